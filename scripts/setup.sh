#!/usr/bin/env bash
# Prepare this machine for the lab and the tests: Debian packages, a running Docker engine
# and the Python virtual environments. Runs again safely; it only does what is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# docker.io: the engine the lab's VMs run in; debootstrap: the lab's base image;
# mosquitto, postgresql-15: real servers for the simulator and stand-in tests.
apt_packages=(docker.io debootstrap mosquitto postgresql-15 openssl ca-certificates)
missing=()
for package in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  # These machines have no init system: run the engine in the background.
  echo "setup: starting dockerd"
  nohup dockerd >/var/log/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null
fi

# A virtual environment per requirements set, rebuilt when its requirements change.
make_venv() {  # directory, requirement arguments...
  local dir=$1 stamp
  shift
  stamp=$(cat "$@" 2>/dev/null | sha256sum | cut -c1-16)
  if [ -f "$dir/.requirements-$stamp" ]; then return; fi
  echo "setup: preparing $dir"
  "${PYTHON:-python3}" -m venv --clear "$dir"
  "$dir/bin/pip" install --quiet --upgrade pip
  "$dir/bin/pip" install --quiet "${@/#/--requirement=}"
  touch "$dir/.requirements-$stamp"
}
make_venv .venv requirements-dev.txt
# The ThingsBoard IoT Gateway brings its own fork of paho as "paho", which clashes with
# paho-mqtt 2.x; the stand-in's test runs the real gateway from its own environment.
make_venv .venv-gateway lab/images/tb-gateway/requirements.txt
