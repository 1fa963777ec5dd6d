#!/bin/sh
# Installs what tests/frameworks needs (idempotent; root or sudo, no terminal needed):
#   Debian: redis-server redis-tools python3 python3-redis python3-celery ruby-sidekiq nodejs
#   npm:    the locked packages of package.json / package-lock.json into ./node_modules
#           (bullmq, ioredis, redis, socket.io, socket.io-client, @socket.io/redis-adapter)
# ringproxy itself is built by scripts/build (build/proxy/ringproxy).
set -eu
cd "$(dirname "$0")"

PACKAGES="redis-server redis-tools python3 python3-redis python3-celery ruby-sidekiq"
# Node.js >= 20 with npm: Debian's nodejs only when no node is on PATH (a node installed
# another way is left alone).
if ! command -v node >/dev/null 2>&1; then PACKAGES="$PACKAGES nodejs npm"; fi

missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  echo "tests/frameworks/setup.sh: installing$missing" >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  # The packaged redis-server starts a system service; the tests start their own on free ports.
  $SUDO service redis-server stop >/dev/null 2>&1 || true
fi

major=$(node --version | sed 's/^v\([0-9]*\).*/\1/')
if [ "$major" -lt 20 ]; then
  echo "tests/frameworks/setup.sh: node $(node --version) is too old; BullMQ and socket.io need node >= 20" >&2
  exit 1
fi

# npm ci when node_modules is missing or older than the lockfile (npm writes
# node_modules/.package-lock.json on every install).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "tests/frameworks/setup.sh: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
