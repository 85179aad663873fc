{{/*
Shared templates of the orbit-controller chart and its subcharts. Named templates are global
in Helm, so every subchart under charts/ uses these; a subchart only says what differs (its
containers' arguments, its RBAC rules, its webhook). The subcharts therefore render only
through this chart.

Names: every object of a workload is called "<release>-<workload>" (orbit-lib.fullname), the
same in the subchart that renders it and in this chart's test Pod and NOTES.
*/}}

{{/* orbit-lib.fullname (dict "ctx" $ "name" "pod-modifier") */}}
{{- define "orbit-lib.fullname" -}}
{{- if eq .ctx.Release.Name .name -}}
{{- .name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .ctx.Release.Name .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* orbit-lib.selectorLabels (dict "ctx" $ "name" workload) */}}
{{- define "orbit-lib.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- end -}}

{{/* orbit-lib.labels (dict "ctx" $ "name" workload "component" "webhook|watcher|…") */}}
{{- define "orbit-lib.labels" -}}
{{ include "orbit-lib.selectorLabels" . }}
app.kubernetes.io/component: {{ .component | default "controller" }}
app.kubernetes.io/part-of: orbit-controller
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/* orbit-lib.image (dict "ctx" $ "image" .Values.image): registry/repository:tag */}}
{{- define "orbit-lib.image" -}}
{{- $g := .ctx.Values.global.image -}}
{{- $repo := required "image.repository is required" .image.repository -}}
{{- if $g.registry -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" $g.registry) $repo -}}
{{- end -}}
{{- $tag := .image.tag | default $g.tag | default .ctx.Chart.AppVersion | toString -}}
{{- if hasPrefix "sha256:" $tag -}}
{{- printf "%s@%s" $repo $tag -}}
{{- else -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end -}}

{{/* The two ConfigMaps every service shares (SPEC §2); the names are fixed in the binaries. */}}
{{- define "orbit-lib.configMapName" -}}orbit-controller-config{{- end -}}
{{- define "orbit-lib.stateConfigMapName" -}}orbit-controller-state{{- end -}}

{{/* orbit-lib.certMode: the validated certificate mode. */}}
{{- define "orbit-lib.certMode" -}}
{{- $mode := .Values.global.certificates.mode -}}
{{- if not (has $mode (list "self-signed" "csr" "cert-manager")) -}}
{{- fail (printf "global.certificates.mode: unknown mode %q (want self-signed, csr or cert-manager)" $mode) -}}
{{- end -}}
{{- $mode -}}
{{- end -}}

{{/* orbit-lib.issuerRef: the cert-manager issuer of the webhook certificates. */}}
{{- define "orbit-lib.issuerRef" -}}
{{- $ref := .Values.global.certificates.certManager.issuerRef | default dict -}}
{{- if $ref.name -}}
name: {{ $ref.name }}
kind: {{ $ref.kind | default "Issuer" }}
group: {{ $ref.group | default "cert-manager.io" }}
{{- else -}}
name: {{ include "orbit-lib.fullname" (dict "ctx" . "name" "selfsigned") }}
kind: Issuer
group: cert-manager.io
{{- end -}}
{{- end -}}

{{/* orbit-lib.tlsSecretName (dict "ctx" $ "name" workload): the serving certificate's Secret. */}}
{{- define "orbit-lib.tlsSecretName" -}}
{{- printf "%s-tls" (include "orbit-lib.fullname" .) -}}
{{- end -}}

{{/*
orbit-lib.container renders one container.
  ctx       the subchart root
  name      the workload (for names of the webhook's Service, Secret, configuration)
  service   the binary (and container name)
  containerName  the container's name when it is not the service's (e.g. an init container)
  values    the container's values (image, logLevel, logVerbosity, httpPort, resources, extraArgs, extraEnv)
  portName  name of the plain-HTTP port
  webhook   true for a webhook: TLS listener and certificate flags
  watcher   true for a watcher: --leader-elect
  args      the service's own flags
  env       the service's own environment variables
  mounts    the service's own volume mounts
  init      true for an init container (no ports, no probes)
*/}}
{{- define "orbit-lib.container" -}}
{{- $ctx := .ctx -}}
{{- $v := .values -}}
{{- $fullname := include "orbit-lib.fullname" (dict "ctx" $ctx "name" .name) -}}
- name: {{ .containerName | default .service }}
  image: {{ include "orbit-lib.image" (dict "ctx" $ctx "image" $v.image) | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy | default $ctx.Values.global.image.pullPolicy }}
  args:
    - --namespace={{ $ctx.Release.Namespace }}
    - --http-address=:{{ $v.httpPort }}
    - --log-format={{ $ctx.Values.global.logFormat }}
    {{- with $v.logLevel }}
    - --log-level={{ . }}
    {{- end }}
    {{- if not (kindIs "invalid" $v.logVerbosity) }}
    - --log-verbosity={{ $v.logVerbosity }}
    {{- end }}
    {{- if .watcher }}
    - --leader-elect
    {{- end }}
    {{- if .webhook }}
    - --listen-address=:{{ $v.webhook.port }}
    {{- $mode := include "orbit-lib.certMode" $ctx }}
    {{- if eq $mode "cert-manager" }}
    - --cert-mode=files
    - --tls-cert-file=/etc/orbit/tls/tls.crt
    - --tls-key-file=/etc/orbit/tls/tls.key
    {{- else }}
    - --cert-mode={{ $mode }}
    - --cert-secret={{ include "orbit-lib.tlsSecretName" (dict "ctx" $ctx "name" .name) }}
    - --service-name={{ $fullname }}
    - --webhook-config={{ $fullname }}
    {{- if eq $mode "csr" }}
    - --csr-signer-name={{ required "global.certificates.csr.signerName is required in csr mode" $ctx.Values.global.certificates.csr.signerName }}
    {{- end }}
    {{- end }}
    {{- end }}
    {{- range .args }}
    - {{ . | quote }}
    {{- end }}
    {{- range $v.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  envFrom:
    - configMapRef:
        name: {{ include "orbit-lib.configMapName" . }}
  env:
    {{- with $v.resources }}{{ with .limits }}{{ if .memory }}
    - name: GOMEMLIMIT
      valueFrom:
        resourceFieldRef:
          resource: limits.memory
    {{- if .webhook }}
    # Webhooks allocate ~80 KB per admission; collecting a quarter as often cuts the
    # pod-modifier's p99 over TLS at 2,000 req/s from 2.0-2.6 to 1.2-1.3 ms and in process
    # from ~450 to ~280 µs (docs/benchmarks.md). GOMEMLIMIT above still bounds the heap.
    - name: GOGC
      value: "400"
    {{- end }}
    {{- end }}{{ end }}{{ end }}
    {{- with .env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- with $v.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- if not .init }}
  ports:
    - name: {{ .portName }}
      containerPort: {{ $v.httpPort }}
      protocol: TCP
    {{- if .webhook }}
    - name: webhook
      containerPort: {{ $v.webhook.port }}
      protocol: TCP
    {{- end }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: {{ .portName }}
    periodSeconds: 10
    timeoutSeconds: 5
    failureThreshold: 3
  readinessProbe:
    httpGet:
      path: /readyz
      port: {{ .portName }}
    periodSeconds: 5
    timeoutSeconds: 5
    failureThreshold: 3
  {{- end }}
  {{- with $v.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- include "orbit-lib.containerSecurityContext" . | nindent 4 }}
  volumeMounts:
    - name: tmp-{{ .containerName | default .service }}
      mountPath: /tmp
    {{- if and .webhook (eq (include "orbit-lib.certMode" $ctx) "cert-manager") }}
    - name: tls
      mountPath: /etc/orbit/tls
      readOnly: true
    {{- end }}
    {{- with .mounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{- define "orbit-lib.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "orbit-lib.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
orbit-lib.workload renders the ServiceAccount, Deployment, Service, PodDisruptionBudget and
ServiceMonitor of one workload.
  ctx             the subchart root
  name            the workload
  component       webhook or watcher
  pod             Pod-level values (replicas, nodeSelector, tolerations, affinity,
                  topologySpreadConstraints, priorityClassName, podAnnotations, podLabels,
                  serviceAccount, podDisruptionBudget, serviceMonitor)
  containers      list of orbit-lib.container arguments (without ctx and name)
  initContainers  list of orbit-lib.container arguments run before
  volumes         extra Pod volumes
*/}}
{{- define "orbit-lib.workload" -}}
{{- $ctx := .ctx -}}
{{- $pod := .pod -}}
{{- $name := .name -}}
{{- $fullname := include "orbit-lib.fullname" (dict "ctx" $ctx "name" $name) -}}
{{- $meta := dict "ctx" $ctx "name" $name "component" .component -}}
{{- $webhook := eq .component "webhook" -}}
{{- $containers := list -}}
{{- range .containers }}{{ $containers = append $containers (merge (dict "ctx" $ctx "name" $name) .) }}{{ end -}}
{{- $inits := list -}}
{{- range .initContainers }}{{ $inits = append $inits (merge (dict "ctx" $ctx "name" $name) .) }}{{ end -}}
{{- $workers := list -}}
{{- range $containers }}{{ $workers = append $workers (dict .service .values.workers) }}{{ end -}}
{{- $ports := dict -}}
{{- range $containers }}
{{- $p := toString .values.httpPort -}}
{{- if hasKey $ports $p }}{{ fail (printf "%s: containers %s and %s both use httpPort %s" $name (get $ports $p) .service $p) }}{{ end -}}
{{- $_ := set $ports $p .service -}}
{{- end -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $fullname }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "orbit-lib.labels" $meta | nindent 4 }}
  {{- with $pod.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $fullname }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "orbit-lib.labels" $meta | nindent 4 }}
spec:
  replicas: {{ $pod.replicas }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "orbit-lib.selectorLabels" $meta | nindent 6 }}
  {{- if $webhook }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  {{- end }}
  template:
    metadata:
      labels:
        {{- include "orbit-lib.labels" $meta | nindent 8 }}
        {{- with $pod.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        kubectl.kubernetes.io/default-container: {{ (first $containers).service }}
        # The services read orbit-controller-config at start: roll them when it changes.
        checksum/config: {{ dict "global" $ctx.Values.global "workers" $workers | toJson | sha256sum }}
        {{- with $pod.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ $fullname }}
      enableServiceLinks: false
      {{- with $pod.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with $ctx.Values.global.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- include "orbit-lib.podSecurityContext" . | nindent 8 }}
      {{- with $inits }}
      initContainers:
        {{- range . }}
        {{- include "orbit-lib.container" . | nindent 8 }}
        {{- end }}
      {{- end }}
      containers:
        {{- range $containers }}
        {{- include "orbit-lib.container" . | nindent 8 }}
        {{- end }}
      volumes:
        {{- range concat $inits $containers }}
        - name: tmp-{{ .containerName | default .service }}
          emptyDir:
            sizeLimit: 256Mi
        {{- end }}
        {{- if and $webhook (eq (include "orbit-lib.certMode" $ctx) "cert-manager") }}
        - name: tls
          secret:
            secretName: {{ include "orbit-lib.tlsSecretName" $meta }}
        {{- end }}
        {{- with .volumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $pod.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $pod.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $pod.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $pod.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- range . }}
        {{- $c := deepCopy . }}
        {{- if not $c.labelSelector }}
        {{- $_ := set $c "labelSelector" (dict "matchLabels" (include "orbit-lib.selectorLabels" $meta | fromYaml)) }}
        {{- end }}
        - {{- toYaml $c | nindent 10 }}
        {{- end }}
      {{- end }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $fullname }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "orbit-lib.labels" $meta | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "orbit-lib.selectorLabels" $meta | nindent 4 }}
  ports:
    {{- if $webhook }}
    - name: https
      port: 443
      targetPort: webhook
      protocol: TCP
    {{- end }}
    {{- range $containers }}
    - name: {{ .portName }}
      port: {{ .values.httpPort }}
      targetPort: {{ .portName }}
      protocol: TCP
    {{- end }}
{{- if $pod.podDisruptionBudget.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $fullname }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "orbit-lib.labels" $meta | nindent 4 }}
spec:
  maxUnavailable: {{ $pod.podDisruptionBudget.maxUnavailable }}
  unhealthyPodEvictionPolicy: AlwaysAllow
  selector:
    matchLabels:
      {{- include "orbit-lib.selectorLabels" $meta | nindent 6 }}
{{- end }}
{{- if $pod.serviceMonitor.enabled }}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ $fullname }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "orbit-lib.labels" $meta | nindent 4 }}
    {{- with $pod.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "orbit-lib.selectorLabels" $meta | nindent 6 }}
  namespaceSelector:
    matchNames: [{{ $ctx.Release.Namespace }}]
  endpoints:
    {{- range $containers }}
    - port: {{ .portName }}
      path: /metrics
      interval: {{ $pod.serviceMonitor.interval }}
    {{- end }}
{{- end }}
{{- end -}}

{{/*
orbit-lib.rbac renders a service's ClusterRole and Role with their bindings to the workload's
ServiceAccount. A service's roles carry its own name, so a Pod of two services (the
podsettings-poddefaults-manager) shows which rule belongs to which container.
  ctx           the subchart root
  name          the workload (ServiceAccount)
  service       the service (role names)
  component     for labels
  clusterRules  YAML list of cluster-wide rules ("" for none)
  rules         YAML list of rules in the release namespace ("" for none)
  clusterRoles  names of existing ClusterRoles to bind besides (e.g. cluster-admin)
*/}}
{{- define "orbit-lib.rbac" -}}
{{- $ctx := .ctx -}}
{{- $sa := include "orbit-lib.fullname" (dict "ctx" $ctx "name" .name) -}}
{{- $role := include "orbit-lib.fullname" (dict "ctx" $ctx "name" .service) -}}
{{- $meta := dict "ctx" $ctx "name" .name "component" .component -}}
{{- if trim (.clusterRules | default "") }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ $role }}
  labels:
    {{- include "orbit-lib.labels" $meta | nindent 4 }}
rules:
  {{- trim .clusterRules | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ $role }}
  labels:
    {{- include "orbit-lib.labels" $meta | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ $role }}
subjects:
  - kind: ServiceAccount
    name: {{ $sa }}
    namespace: {{ $ctx.Release.Namespace }}
{{- end }}
{{- range .clusterRoles }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ printf "%s-%s" $role . | trunc 63 | trimSuffix "-" }}
  labels:
    {{- include "orbit-lib.labels" $meta | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ . }}
subjects:
  - kind: ServiceAccount
    name: {{ $sa }}
    namespace: {{ $ctx.Release.Namespace }}
{{- end }}
{{- if trim (.rules | default "") }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ $role }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "orbit-lib.labels" $meta | nindent 4 }}
rules:
  {{- trim .rules | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $role }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "orbit-lib.labels" $meta | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ $role }}
subjects:
  - kind: ServiceAccount
    name: {{ $sa }}
    namespace: {{ $ctx.Release.Namespace }}
{{- end }}
{{- end -}}

{{/* orbit-lib.rules.lease: leader election on the Lease named after the service. */}}
{{- define "orbit-lib.rules.lease" -}}
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [create]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  resourceNames: [{{ . }}]
  verbs: [get, update]
{{- end -}}

{{/* orbit-lib.rules.stateWriter: one key of the state ConfigMap, created when missing. */}}
{{- define "orbit-lib.rules.stateWriter" -}}
- apiGroups: [""]
  resources: [configmaps]
  verbs: [create]
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [{{ include "orbit-lib.stateConfigMapName" . }}]
  verbs: [patch]
{{- end -}}

{{/*
orbit-lib.rules.webhookCluster (dict "ctx" $ "name" workload): cluster-wide rules of the
certificate modes. self-signed and csr keep caBundle of their own MutatingWebhookConfiguration
current (watched by name); csr also creates, approves and cleans up its
CertificateSigningRequests for one signer. cert-manager mode needs none (cainjector).
*/}}
{{- define "orbit-lib.rules.webhookCluster" -}}
{{- $mode := include "orbit-lib.certMode" .ctx -}}
{{- if ne $mode "cert-manager" }}
- apiGroups: [admissionregistration.k8s.io]
  resources: [mutatingwebhookconfigurations]
  resourceNames: [{{ include "orbit-lib.fullname" . }}]
  verbs: [get, list, watch, patch]
{{- end }}
{{- if eq $mode "csr" }}
- apiGroups: [certificates.k8s.io]
  resources: [certificatesigningrequests]
  verbs: [create, list, watch, delete]
- apiGroups: [certificates.k8s.io]
  resources: [certificatesigningrequests/approval]
  verbs: [update]
- apiGroups: [certificates.k8s.io]
  resources: [signers]
  resourceNames: [{{ .ctx.Values.global.certificates.csr.signerName }}]
  verbs: [approve]
{{- end }}
{{- end -}}

{{/*
orbit-lib.rules.webhookNamespace (dict "ctx" $ "name" workload): the serving Secret and, in
self-signed mode, the CA's Secret "<secret>-ca", created by the service (create cannot be
limited to a name) and otherwise read, watched, replaced (or deleted to change their type) by
name only; csr mode also reads the cluster CA. cert-manager mode mounts the Secret.
*/}}
{{- define "orbit-lib.rules.webhookNamespace" -}}
{{- $mode := include "orbit-lib.certMode" .ctx -}}
{{- if ne $mode "cert-manager" }}
{{- $secret := include "orbit-lib.tlsSecretName" . }}
- apiGroups: [""]
  resources: [secrets]
  verbs: [create]
- apiGroups: [""]
  resources: [secrets]
  resourceNames: [{{ $secret }}{{ if eq $mode "self-signed" }}, {{ $secret }}-ca{{ end }}]
  verbs: [get, list, watch, update, delete]
{{- end }}
{{- if eq $mode "csr" }}
# The cluster CA that verifies the signed certificate.
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [kube-root-ca.crt]
  verbs: [get]
{{- end }}
{{- end -}}

{{/*
orbit-lib.webhook renders a MutatingWebhookConfiguration with one webhook on Pods, and in
cert-manager mode the Certificate it trusts.
  ctx                the subchart root
  name               the workload (Service, configuration and Certificate names)
  webhookName        the webhook's qualified name
  path               the URL path
  namespaceSelector  the selector (a dict)
  sideEffects        None or NoneOnDryRun
  values             .webhook values (failurePolicy, timeoutSeconds)
*/}}
{{- define "orbit-lib.webhook" -}}
{{- $ctx := .ctx -}}
{{- $fullname := include "orbit-lib.fullname" (dict "ctx" $ctx "name" .name) -}}
{{- $meta := dict "ctx" $ctx "name" .name "component" "webhook" -}}
{{- $mode := include "orbit-lib.certMode" $ctx }}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "orbit-lib.labels" $meta | nindent 4 }}
  {{- if eq $mode "cert-manager" }}
  annotations:
    cert-manager.io/inject-ca-from: {{ $ctx.Release.Namespace }}/{{ $fullname }}
  {{- end }}
webhooks:
  # caBundle is not rendered: the service keeps it current (self-signed, csr) or cert-manager's
  # cainjector does; Helm's three-way merge leaves the injected value alone on upgrade.
  - name: {{ .webhookName }}
    admissionReviewVersions: [v1]
    clientConfig:
      service:
        name: {{ $fullname }}
        namespace: {{ $ctx.Release.Namespace }}
        path: {{ .path }}
        port: 443
    rules:
      - apiGroups: [""]
        apiVersions: [v1]
        operations: [CREATE, UPDATE]
        resources: [pods]
        scope: Namespaced
    namespaceSelector:
      {{- toYaml .namespaceSelector | nindent 6 }}
    failurePolicy: {{ .values.failurePolicy }}
    matchPolicy: Equivalent
    # Another webhook (the other of ours included) may change a Pod after us: run again then.
    reinvocationPolicy: IfNeeded
    sideEffects: {{ .sideEffects }}
    timeoutSeconds: {{ .values.timeoutSeconds }}
{{- if eq $mode "cert-manager" }}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: {{ $fullname }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "orbit-lib.labels" $meta | nindent 4 }}
spec:
  secretName: {{ include "orbit-lib.tlsSecretName" $meta }}
  commonName: {{ $fullname }}.{{ $ctx.Release.Namespace }}.svc
  dnsNames:
    - {{ $fullname }}
    - {{ $fullname }}.{{ $ctx.Release.Namespace }}
    - {{ $fullname }}.{{ $ctx.Release.Namespace }}.svc
    - {{ $fullname }}.{{ $ctx.Release.Namespace }}.svc.cluster.local
  duration: {{ $ctx.Values.global.certificates.certManager.duration }}
  renewBefore: {{ $ctx.Values.global.certificates.certManager.renewBefore }}
  privateKey:
    algorithm: ECDSA
    size: 256
    rotationPolicy: Always
  usages: [server auth, digital signature, key encipherment]
  issuerRef:
    {{- include "orbit-lib.issuerRef" $ctx | nindent 4 }}
{{- end }}
{{- end -}}
