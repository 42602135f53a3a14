#!/usr/bin/env bash
# Starts berth in the foreground: the supervisor (with its embedded NATS) and
# apigw. Imports busybox:latest from busybox-static when the store has none.
# Ctrl-C stops the daemons; running containers keep running (their shims are
# on their own).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${BERTH_ROOT:-/var/lib/berth}
EXEC_ROOT=${BERTH_EXEC_ROOT:-/run/berth}
NATS_LISTEN=${BERTH_NATS_LISTEN:-127.0.0.1:4222}
SOCK="$EXEC_ROOT/berth.sock"
export DOCKER_HOST="unix://$SOCK"

bin/berth-supervisor --root "$ROOT" --exec-root "$EXEC_ROOT" --nats-listen "$NATS_LISTEN" &
sup=$!
# the supervisor writes apigw's bus credentials into $ROOT/auth (root only)
bin/berth-apigw --host "$DOCKER_HOST" --nats-url "nats://$NATS_LISTEN" --nats-credentials "$ROOT/auth/apigw.json" &
gw=$!
stop() { trap - EXIT; kill -TERM "$gw" "$sup" 2>/dev/null || true; wait "$gw" "$sup" 2>/dev/null || true; exit 0; }
trap stop INT TERM EXIT

up=
for _ in $(seq 1 300); do
  docker info >/dev/null 2>&1 && { up=1; break; } # answers once apigw has the bus
  sleep 0.1
done
if [ -z "$up" ]; then
  echo "run: the API did not come up on $SOCK in 30 s" >&2
  stop
fi
if ! docker image inspect busybox:latest >/dev/null 2>&1; then
  echo "run: importing busybox:latest from busybox-static"
  go run ./deploy/mkbusybox | docker import -c 'CMD ["sh"]' - busybox:latest >/dev/null
fi
echo "berth is up: export DOCKER_HOST=$DOCKER_HOST"
wait
