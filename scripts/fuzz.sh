#!/usr/bin/env bash
# Runs every Go fuzz target in the project for a while each: scripts/fuzz.sh 60s
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-30s}
grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do
  pkg=./$(dirname "${f#./}")
  for fn in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | cut -d' ' -f2); do
    echo "fuzz $pkg $fn for $t"
    go test -run XXX -fuzz "^$fn\$" -fuzztime "$t" "$pkg"
  done
done
