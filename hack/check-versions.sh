#!/usr/bin/env bash
# Fails when two modules require different versions of the same k8s.io/* or sigs.k8s.io module:
# mixed client-go/apimachinery versions compile but misbehave at run time.
set -euo pipefail
declare -A seen
status=0
for m in "$@"; do
  while read -r mod ver; do
    if [ -n "${seen[$mod]:-}" ] && [ "${seen[$mod]%% *}" != "$ver" ]; then
      echo "version mismatch: $mod is ${seen[$mod]} but $ver in $m/go.mod" >&2
      status=1
    fi
    seen[$mod]="$ver (in $m/go.mod)"
  done < <(awk '/^require|^\t/ {for (i=1;i<=NF;i++) if ($i ~ /^(k8s\.io|sigs\.k8s\.io\/controller-runtime)\//) print $i, $(i+1)}' "$m/go.mod")
done
[ $status -eq 0 ] && echo "k8s.io/* versions agree across: $*"
exit $status
