#!/usr/bin/env bash
# What the inner-state policy costs (docs/distributed.md): Omniglot 5-way 5-shot with the paper's flags
# (--preset omniglot-5w5s), 500 meta-iterations x seeds 0-2 and one 5,000-iteration run (seed 0), for carry,
# shared and reset, each evaluated on 1,000 test tasks. Runs JOBS trainings at a time, each on one engine
# thread; a finished run's JSON is kept, so the script resumes. Then prints the table.
#
#   DATA=data/omniglot JOBS=2 bash scripts/policy-table.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-data/omniglot}
OUT=${OUT:-docs/results/policy}
JOBS=${JOBS:-2}
mkdir -p "$OUT"
runs=()
for policy in carry shared reset; do
  for seed in 0 1 2; do runs+=("500 $policy $seed"); done
  runs+=("5000 $policy 0")
done
printf '%s\n' "${runs[@]}" | xargs -P "$JOBS" -L 1 bash -c '
  iters=$0 policy=$1 seed=$2
  file="'"$OUT"'/$policy-$iters-seed$seed.json"
  [ -s "$file" ] && exit 0
  REPTILE_NATIVE_THREADS=1 node dist/cli/main.js train --preset omniglot-5w5s --data-dir "'"$DATA"'" \
    --meta-iters "$iters" --inner-state "$policy" --seed "$seed" --eval-samples 1000 --eval-interval 1000000 --json \
    > "$file.tmp" 2> "$file.log" && mv "$file.tmp" "$file" && echo "done: $file"'
node scripts/policy-table.mjs "$OUT"
