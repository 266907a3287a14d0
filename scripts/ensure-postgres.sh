#!/usr/bin/env bash
# Makes sure PostgreSQL answers on 127.0.0.1:5432 with trust authentication, as the tests
# expect. On this project's machines the server is already running; if it is stopped, start the
# installed cluster; if none is installed, install Debian's and open it on loopback.
set -euo pipefail

ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
ready && exit 0

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "ensure-postgres: installing PostgreSQL"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
fi
version=$(ls /etc/postgresql | sort -n | tail -1)
conf=/etc/postgresql/$version/main
if ! grep -q "kiosk-tests" "$conf/pg_hba.conf"; then
  # Trust on loopback only: these are throwaway test databases on a developer or CI machine.
  sed -i '1i host all all 127.0.0.1/32 trust # kiosk-tests\nlocal all all trust # kiosk-tests' "$conf/pg_hba.conf"
fi
pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
for _ in $(seq 1 60); do
  ready && break
  sleep 0.5   # polling a real readiness condition, bounded to 30 s
done
ready || { echo "ensure-postgres: PostgreSQL does not answer on 127.0.0.1:5432" >&2; exit 1; }
psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test"
