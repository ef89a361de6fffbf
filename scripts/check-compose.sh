#!/usr/bin/env bash
# Validates docker-compose.yml offline (schema, interpolation, anchors, depends_on conditions)
# without starting anything: `docker-compose config -q` (v1, e.g. Debian's 1.29) if present,
# else `docker compose config -q` (the v2 plugin). Exits non-zero when the file is invalid or
# no Compose is installed.
#
#   scripts/check-compose.sh [compose-file]      (default: docker-compose.yml at the repo root)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
file="${1:-$root/docker-compose.yml}"

if [ ! -f "$file" ]; then
  echo "check-compose: $file: no such file" >&2
  exit 1
fi

# Relative paths in the file (build context, ./deploy/...) resolve against its directory.
cd "$(dirname "$file")"
name="$(basename "$file")"

if command -v docker-compose >/dev/null 2>&1; then
  runner=(docker-compose)
elif command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
  runner=(docker compose)
else
  echo "check-compose: neither \`docker-compose\` nor the \`docker compose\` plugin is installed." >&2
  echo "  Install one, e.g. \`apt-get install -y docker-compose\` (Debian, v1.29) or Docker's" >&2
  echo "  docker-compose-plugin (v2), then run this again." >&2
  exit 1
fi

# Production defaults: without an admin token (or payload keys) the file must not even render.
if env -u FLEET_ADMIN_TOKEN -u FLEET_PAYLOAD_KEYS "${runner[@]}" -f "$name" config -q 2>/dev/null; then
  echo "check-compose: $file starts without FLEET_ADMIN_TOKEN / FLEET_PAYLOAD_KEYS; it must refuse" >&2
  exit 1
fi
export FLEET_ADMIN_TOKEN="${FLEET_ADMIN_TOKEN:-check-compose-admin-token}"
export FLEET_PAYLOAD_KEYS="${FLEET_PAYLOAD_KEYS:-check:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=}"

if "${runner[@]}" -f "$name" config -q; then
  echo "check-compose: $file is valid (${runner[*]} config -q)"
else
  status=$?
  echo "check-compose: $file is INVALID (${runner[*]} config -q exited $status)" >&2
  exit "$status"
fi

# Every published port binds loopback unless FLEET_PUBLISH_IP says otherwise.
unbound=$(env -u FLEET_PUBLISH_IP "${runner[@]}" -f "$name" config | grep -E '^\s+- (published: )?"?[0-9]+:[0-9]+' || true)
if [ -n "$unbound" ]; then
  echo "check-compose: ports published on every interface by default:" >&2
  echo "$unbound" >&2
  exit 1
fi
echo "check-compose: refuses without an admin token and payload keys; ports bind 127.0.0.1 by default"
