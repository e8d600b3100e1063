#!/usr/bin/env bash
# Precision/recall/FPR and latency of the secrets scanner and the output checks on the
# generated sets (bench/guard_data/gen_secrets.py, gen_output.py). Each latency run is
# printed for the mixed pool (every row, positives included: a worst case) and for the
# negatives only (ordinary text). Usage: bash bench/guard_data/run_guard_evals.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
EVAL=bench/guard_data/eval_guards.py
D=bench/guard_data
TOPICS='{"topics": ["violence", "weapons", "politics", "medical_advice", "legal_advice",
 "finance_advice", "drugs", "gambling", "religion", "adult"]}'
run() {  # scanner data [options]
  for pool in all negatives; do
    echo "== $1 $(basename "$2") latency-from=$pool"
    "$PY" "$EVAL" "$1" "$2" --options "${3:-{\}}" --latency --latency-from "$pool"
  done
}
run secrets $D/secrets_eval.jsonl
run secrets $D/secrets_holdout.jsonl
run toxicity $D/output_toxicity.jsonl
run toxicity $D/output_toxicity_holdout.jsonl
run toxicity $D/output_toxicity_holdout2.jsonl
run banned_topics $D/output_topics.jsonl "$TOPICS"
run banned_substrings $D/output_substrings.jsonl
run canary $D/output_canary.jsonl
"$PY" "$EVAL" json_schema $D/output_schema.jsonl
"$PY" bench/guard_data/bench_schema.py
