#!/usr/bin/env bash
# Runs every Go fuzz target in the project (outside the runtime, whose own
# tests cover it) for a while each: scripts/fuzz.sh 60s, or a number of
# inputs: scripts/fuzz.sh 20000x. `make test` runs a count per target so CI
# exercises every target (a count, because a duration can end in a spurious
# "context deadline exceeded" with Go 1.26: golang/go#75804); `make fuzz`
# runs each for longer. A failing input is kept in the package's
# testdata/fuzz and makes the plain `go test` fail from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-30s}
n=0
while read -r f; do
  pkg=./$(dirname "${f#./}")
  for fn in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | cut -d' ' -f2); do
    echo "fuzz $pkg $fn for $t"
    go test -run XXX -fuzz "^$fn\$" -fuzztime "$t" -parallel 2 "$pkg"
    n=$((n + 1))
  done
done < <(grep -rl --include='*_test.go' '^func Fuzz' pkg services tests | grep -v '^services/runtime/' | sort)
echo "fuzz: $n targets, $t each"
