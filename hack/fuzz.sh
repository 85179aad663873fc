#!/usr/bin/env bash
# Runs every FuzzXxx target of the given modules for a bounded time each.
set -euo pipefail
fuzztime=$1; shift
for m in "$@"; do
  (cd "$m"
   for pkg in $(go list ./...); do
     dir=$(go list -f '{{.Dir}}' "$pkg")
     for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
       echo "=== fuzz $pkg $target for $fuzztime"
       ORBIT_NO_CONTROL_PLANE=1 go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
     done
   done)
done
