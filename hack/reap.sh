#!/usr/bin/env bash
# Stops control-plane processes a killed test run left behind (their parent is gone, so init
# adopted them). Processes of running tests still have their test binary as parent.
set -euo pipefail
bin=${1:?usage: reap.sh KUBE_BIN_DIR}
for pid in $(pgrep -f "^$bin/(etcd|kube-apiserver|kube-controller-manager) " || true); do
  if [ "$(ps -o ppid= -p "$pid" | tr -d ' ')" = "1" ]; then
    echo "reaping orphaned $(ps -o comm= -p "$pid") (pid $pid)" >&2
    kill "$pid" 2>/dev/null || true
  fi
done
