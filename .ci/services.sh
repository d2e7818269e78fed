#!/usr/bin/env bash
# Start the local PostgreSQL and Redis if they do not answer (CI machines may have them stopped).
set -u
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
fi
# tests/test_proxy.py runs Debian's nginx in front of the server as its own child process. The package's
# post-install would start the distro service on :80: a temporary policy-rc.d forbids that, and a service
# started anyway (an existing policy allowing it) is stopped and kept from coming back at boot.
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "installing nginx"
  own_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; own_policy=1; fi
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light; } || true
  [ "$own_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  if [ -e /run/nginx.pid ]; then /usr/sbin/nginx -s quit 2>/dev/null || true; fi
  command -v update-rc.d >/dev/null 2>&1 && update-rc.d nginx disable >/dev/null 2>&1 || true
  command -v systemctl >/dev/null 2>&1 && systemctl disable --now nginx >/dev/null 2>&1 || true
fi
# tests/test_api_docs_browser.py drives Debian's Chromium (Playwright with executable_path: no browser
# download). Installed once, quietly, bounded; the test fails on CI if this did not work, skips elsewhere.
if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium"
  { timeout 300 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq \
      --no-install-recommends chromium chromium-driver >/dev/null; } \
    || echo "chromium install failed (tests/test_api_docs_browser.py needs it)"
fi
pg_isready -h 127.0.0.1 -p 5432 && redis-cli -h 127.0.0.1 -p 6379 ping
