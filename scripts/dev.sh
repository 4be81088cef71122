#!/usr/bin/env bash
# The README's two set-up commands, in one place (CI calls `bash scripts/dev.sh test` through .ci/run):
#   bash scripts/dev.sh demo [demo args]   # venv + CPU install, then the main job: a short verl training of a tiny model
#   bash scripts/dev.sh test [pytest args] # venv + CPU install, then the whole test suite and `ruff check`
# Idempotent: the install is skipped when setup.py and this script are unchanged since the last one (stamp file).
set -euo pipefail

cmd=${1:-}
[ $# -gt 0 ] && shift
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

VENV=${VENV:-$root/.venv}
PYTHON=${PYTHON:-python3}
# The CPU wheel of torch that lies on this machine; verl's GPU extras pin torch 2.11 for clusters instead.
torch_pin="torch==2.13.0"

install() {
  local stamp="$VENV/.trustrl-install-stamp"
  local want
  want=$(cat setup.py pyproject.toml scripts/dev.sh | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "[dev.sh] environment up to date ($VENV)"
    return
  fi
  echo "[dev.sh] installing into $VENV"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  # torch first and pinned, so nothing below can pull a multi-GB CUDA build.
  "$VENV/bin/pip" install -q --disable-pip-version-check "$torch_pin"
  "$VENV/bin/pip" install -q --disable-pip-version-check -e ".[test]" "$torch_pin"
  echo "$want" > "$stamp"
}

# No hub, no telemetry: everything the tests and the demo use is built locally.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=disabled RAY_DISABLE_USAGE_STATS=1

case "$cmd" in
  demo)
    install
    exec "$VENV/bin/python" -m trustrl.recipes.cpu "$@"
    ;;
  test)
    install
    "$VENV/bin/ruff" check .
    # pytest exits 5 when it collects no test: the suite always has tests, so that is a failure too.
    # Two xdist workers: the end-to-end trainer runs stay on one, in order (xdist_group marks; tests/conftest.py fails if
    # the grouping is not in effect); PYTEST_WORKERS=0 for a single process.
    exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider -n "${PYTEST_WORKERS:-2}" --dist loadgroup "$@"
    ;;
  *)
    echo "usage: bash scripts/dev.sh demo|test [args]" >&2
    exit 2
    ;;
esac
