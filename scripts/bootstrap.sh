#!/usr/bin/env bash
# Installs what aircast needs on a fresh Debian machine: Debian packages
# (mosquitto and what its client-id plugin builds with, a JDK for Spark, Chromium for the
# console's browser test), a virtualenv, torch (CPU) first, then
# the Python packages. Safe to rerun: each step is skipped when done.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
# Java for Spark, with javac: local Spark compiles its file system shim once (infra/local/glue/localfs.py)
{ command -v java >/dev/null 2>&1 && [ -x "$(dirname "$(readlink -f "$(command -v java)")")/javac" ]; } || need_apt+=(openjdk-17-jdk-headless)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# the local IoT Core's client-id check is a small mosquitto plugin compiled on first use
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
[ -f /usr/include/mosquitto_plugin.h ] || need_apt+=(mosquitto-dev)
[ -f /usr/include/mosquitto.h ] || need_apt+=(libmosquitto-dev)
[ -f /usr/include/openssl/x509.h ] || need_apt+=(libssl-dev)
# the console's browser test drives Debian's headless Chromium through its chromedriver (no browser download)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  # Debian starts a system-wide mosquitto on 1883; aircast runs its own broker on 8883.
fi

stamp="$VENV/.aircast-installed"
if [ ! -f "$stamp" ] || [ requirements.txt -nt "$stamp" ] || [ setup.py -nt "$stamp" ]; then
  [ -x "$VENV/bin/python" ] || { echo "==> creating virtualenv $VENV"; "$PYTHON" -m venv "$VENV"; }
  echo "==> installing Python packages into $VENV (first run: about 3 minutes)"
  "$VENV/bin/pip" install -q --upgrade pip
  # torch first, from the CPU wheel, or the resolver pulls a multi-GB CUDA build.
  "$VENV/bin/pip" install -q "torch==2.13.0"
  "$VENV/bin/pip" install -q -r requirements.txt
  "$VENV/bin/pip" install -q --no-deps -e .
fi

# local Spark's class data sharing archive (a cold Spark session starts ~2 s sooner); rebuilt when Java,
# pyspark or the file system shim change, skipped (a slower start, same results) when it cannot be built
"$VENV/bin/python" -c "from aircast.glue import build_class_archive; build_class_archive()" \
  || echo "==> no class archive for local Spark (sessions start without one)"
touch "$stamp"  # newer than requirements.txt, setup.py and this script: make skips all this next time
