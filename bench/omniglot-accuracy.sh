#!/bin/bash
# Opt-in accuracy run (not part of npm test): Omniglot 5-way 5-shot with the paper's settings for
# 500 meta-iterations, then 1,000 non-transductive test tasks. Needs the Omniglot archives in $DATA
# (default data/omniglot; `reptile data omniglot --dir data/omniglot --download` fetches them) and
# `npm run build`. Usage: DATA=DIR bench/omniglot-accuracy.sh [work-dir]   (default /tmp/reptile-omniglot-acc)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data=$(cd "${DATA:-$root/data/omniglot}" && pwd)
work=${1:-/tmp/reptile-omniglot-acc}
mkdir -p "$work"
export REPTILE_CACHE="$work/cache"
cli="node $root/dist/cli/main.js"
rm -rf "$work/ck" "$work/cache"
time $cli data omniglot --dir "$data"
time $cli train --dataset omniglot --data-dir "$data" --shots 5 --classes 5 --train-shots 10 --inner-batch 10 \
  --inner-iters 5 --learning-rate 0.001 --meta-step 1 --meta-step-final 0 --meta-batch 5 --eval-batch 5 --eval-iters 50 \
  --meta-iters 500 --eval-interval 10 --checkpoint "$work/ck"
time $cli eval --checkpoint "$work/ck" --samples 1000 --json
