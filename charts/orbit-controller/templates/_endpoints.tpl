{{/*
orbit-controller.readyEndpoints: "name url" lines, one per enabled service, for the test Pod
and NOTES: each service's /readyz through its workload's Service.
*/}}
{{- define "orbit-controller.readyEndpoints" -}}
{{- $ns := .Release.Namespace -}}
{{- $v := .Values -}}
{{- range $name := list "userspace-chart-manager" "pod-modifier" "image-updater" "image-replicator" }}
{{- $s := index $v $name }}
{{- if $s.enabled }}
{{ $name }} http://{{ include "orbit-lib.fullname" (dict "ctx" $ "name" $name) }}.{{ $ns }}.svc:{{ $s.httpPort }}/readyz
{{- end }}
{{- end }}
{{- $ppm := index $v "podsettings-poddefaults-manager" }}
{{- if $ppm.enabled }}
{{- range $name, $key := dict "podsettings-watcher" "podsettingsWatcher" "poddefaults-watcher" "poddefaultsWatcher" }}
{{- $c := index $ppm $key }}
{{- if $c.enabled }}
{{ $name }} http://{{ include "orbit-lib.fullname" (dict "ctx" $ "name" "podsettings-poddefaults-manager") }}.{{ $ns }}.svc:{{ $c.httpPort }}/readyz
{{- end }}
{{- end }}
{{- end }}
{{- end -}}
