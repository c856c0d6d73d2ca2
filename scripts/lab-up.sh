#!/usr/bin/env bash
# Bring up the lab (three "VMs" with their own Docker engine, a private registry) and run
# the main job, site.yml, on it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. .venv/bin/activate
ansible-playbook -i inventories/lab playbooks/lab.yml site.yml "$@"
