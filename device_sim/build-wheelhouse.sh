#!/bin/sh
# Builds the simulator image's wheelhouse on a host that reaches PyPI (CPython 3.11, x86_64,
# like the image's Debian 12 python3). Run from the repository root:
#   sh device_sim/build-wheelhouse.sh
set -eu
out=.cache/wheels/device_sim
mkdir -p "$out"
python3 -m pip wheel --quiet --wheel-dir "$out" -r device_sim/requirements-image.txt
python3 -m pip wheel --quiet --no-deps --wheel-dir "$out" ./device_sim
ls "$out"
