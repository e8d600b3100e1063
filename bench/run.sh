#!/usr/bin/env bash
# Peer benchmark: direct-to-upstream vs. LiteLLM 1.106.2 vs. Bastion, in one run.
#
#   bench/run.sh                       # full run (about 6-7 min; first run also installs LiteLLM)
#   bench/run.sh --duration 10         # extra args go to the shared harness's bench.py
#   bench/run.sh --no-litellm --duration 5    # quick iteration: direct + Bastion only
#
# Uses the shared harness (default ../shared/bench beside the checkout; PEERBENCH_HARNESS).
# Bastion runs from this checkout's .venv (`make install` first), pinned to the last CPU
# like every other target, with bench/bastion-bench.yaml: one upstream model `fake-model`
# pointed at the harness's fake upstream, no embedded model. Results land in
# .peerbench/results-<timestamp>/ (git-ignored) unless --out is given.
#
# Env: PEERBENCH_HARNESS, PEERBENCH_DIR (default <repo>/.peerbench), LITELLM_SPEC
#      (default 'litellm[proxy]==1.106.2'), BASTION_PORT (default 15000).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HARNESS="${PEERBENCH_HARNESS:-$ROOT/../shared/bench}"
PY="$ROOT/.venv/bin/python"
BASTION_PORT="${BASTION_PORT:-15000}"

export PEERBENCH_DIR="${PEERBENCH_DIR:-$ROOT/.peerbench}"
export LITELLM_SPEC="${LITELLM_SPEC:-litellm[proxy]==1.106.2}"

[[ -x "$HARNESS/run_peer_bench.sh" ]] || {
  echo "peer-bench harness not found at $HARNESS (set PEERBENCH_HARNESS)" >&2; exit 2; }
"$PY" -c 'import bastion, uvloop, httptools' 2>/dev/null || {
  echo "Bastion is not installed in $ROOT/.venv: run 'make install' first" >&2; exit 2; }

q() { printf '%q' "$1"; }
# {api_key} and {port} are filled in by the harness. PYTHONPATH makes the checkout's code
# the one measured even if .venv holds a non-editable install. `exec`: the measured
# process is Bastion itself (CPU and RSS are sampled over its process tree).
BASTION_CMD="BASTION_MASTER_KEY={api_key} PYTHONPATH=$(q "$ROOT") \
exec $(q "$PY") -m bastion serve --config $(q "$ROOT/bench/bastion-bench.yaml") \
--host 127.0.0.1 --port {port}"

has_out=0
for arg in "$@"; do [[ "$arg" == "--out" || "$arg" == --out=* ]] && has_out=1; done
extra=()
if [[ $has_out == 0 ]]; then
  extra=(--out "$PEERBENCH_DIR/results-$(date +%Y%m%d-%H%M%S)")
fi

mkdir -p "$PEERBENCH_DIR"
cd "$ROOT"
exec "$HARNESS/run_peer_bench.sh" --target bastion "$BASTION_PORT" "$BASTION_CMD" \
  "${extra[@]}" "$@"
