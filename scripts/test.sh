#!/usr/bin/env bash
# Every check of the repository: linters, the pytest suites, then every Molecule scenario.
# Exits non-zero as soon as one fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. .venv/bin/activate
export TBSI_GATEWAY_PYTHON="$PWD/.venv-gateway/bin/python"
# Thousands of MQTT connections in the simulator tests.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "== lint"
yamllint .
ansible-lint
ruff check .
ruff format --check .
# One run per tree: Ansible's module and plugin directories may share module names.
for tree in "library module_utils" plugins/filter plugins/lookup plugins/doc_fragments lab tests "$(ls -d molecule/*/tests)" \
  "device_sim/src device_sim/tests files/models/train.py" "bench device_sim/tests/sim_support.py" \
  roles/fleet/library roles/fleet/action_plugins roles/loadtest/files; do
  mypy $tree
done

echo "== pytest"
python -m pytest -q tests lab device_sim/tests

echo "== molecule"
for scenario in $(ls molecule/*/molecule.yml | xargs -n1 dirname | xargs -n1 basename); do
  molecule test --scenario-name "$scenario"
done
echo "== all checks passed"
