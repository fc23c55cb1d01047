#!/usr/bin/env bash
# Five hosts on this machine and a short distributed training across them:
#   sudo bash scripts/hosts-demo.sh [extra `reptile train` flags]
# Each host is a network namespace with one interface on 10.231.9.0/24, plugged into a bridge in a
# sixth namespace (the switch). Redis runs on `redis`, the coordinator on `coord`, a worker on each
# of `w1`, `w2`, `w3`. Nothing is reachable outside the namespaces, and everything is removed at the
# end (also on failure or Ctrl-C). Needs root, iproute2, redis-server and `npm run build`.
# DATA=/path/to/omniglot trains Omniglot 5-way (the folder of the two zips); without it, sine.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "hosts-demo: network namespaces need root: run it with sudo" >&2; exit 1; }
command -v ip >/dev/null || { echo "hosts-demo: 'ip' is missing: apt-get install iproute2" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "hosts-demo: redis-server is missing: apt-get install redis-server" >&2; exit 1; }
[ -f dist/cli/main.js ] || { echo "hosts-demo: build the CLI first: npm run build" >&2; exit 1; }

tag="rpth-$$-demo-"          # every name starts with this; `ip netns list` shows them while it runs
hosts=(redis coord w1 w2 w3)
work=$(mktemp -d /tmp/reptile-hosts-demo-XXXXXX)
reptile=(node --initial-old-space-size=512 "$PWD/dist/cli/main.js")

cleanup() {
  exec 2>/dev/null   # the shell reports each killed job
  for ns in w1 w2 w3 coord redis switch; do
    # kill what runs on the host, then delete it (its interfaces go with it)
    for pid in $(ip netns pids "$tag$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$tag$ns" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

on() { local h=$1; shift; ip netns exec "$tag$h" "$@"; }   # run a command on host $1

echo "--- the switch: a bridge in a namespace of its own"
ip netns add "${tag}switch"
ip -n "${tag}switch" link add br0 type bridge
ip -n "${tag}switch" link set br0 up
i=2
for h in "${hosts[@]}"; do
  ip netns add "$tag$h"
  # a cable: eth0 on the host, port p$i on the switch
  ip link add "p$i" netns "${tag}switch" type veth peer name eth0 netns "$tag$h"
  ip -n "${tag}switch" link set "p$i" master br0 up
  ip -n "$tag$h" addr add "10.231.9.$i/24" dev eth0
  ip -n "$tag$h" link set eth0 up
  ip -n "$tag$h" link set lo up
  echo "host $h: 10.231.9.$i"
  i=$((i + 1))
done
url=redis://10.231.9.2:6379
# Pull a host's cable with: ip -n ${tag}switch link set pN down   (N = 2 + its index above)

echo "--- redis on 'redis'"
on redis redis-server --port 6379 --bind 10.231.9.2 --dir "$work" --save '' --appendonly yes \
  --maxmemory-policy noeviction --protected-mode no --tcp-keepalive 15 >"$work/redis.log" 2>&1 &
for _ in $(seq 100); do on redis redis-cli -h 10.231.9.2 ping >/dev/null 2>&1 && break; sleep 0.1; done

if [ -n "${DATA:-}" ]; then
  train=(--preset omniglot-5w5s --data-dir "$DATA" --meta-iters 30 --eval-samples 10 --eval-interval 1000000)
  data=(--data-dir "$DATA")
else
  train=(--task sine --meta-iters 30 --meta-batch 6 --inner-iters 200 --eval-samples 10)
  data=()
fi

echo "--- a worker on each of w1, w2, w3"
for h in w1 w2 w3; do
  on "$h" "${reptile[@]}" worker --redis "$url" "${data[@]}" 2>&1 | sed "s/^/[$h] /" &
done
sleep 3

echo "--- the coordinator on 'coord', then the same run inline for comparison"
on coord "${reptile[@]}" train "${train[@]}" --executor redis --redis "$url" --checkpoint "$work/across" "$@" 2>&1 | sed 's/^/[coord] /'
"${reptile[@]}" train "${train[@]}" --checkpoint "$work/inline" "$@" >/dev/null 2>&1
# A checkpoint is a 16-byte preamble (its header's length at byte 12), the JSON header, the
# parameters and optimizer state, and a 32-byte digest: compare what lies between.
payload() { node -e 'const b = require("fs").readFileSync(process.argv[1]); const h = b.readUInt32LE(12); process.stdout.write(require("crypto").createHash("sha256").update(b.subarray(16 + h, b.length - 32)).digest("hex"));' "$1/reptile.ckpt"; }
if [ "$(payload "$work/across")" = "$(payload "$work/inline")" ]; then
  echo "--- the parameters across hosts equal the inline run's, bit for bit"
else
  echo "--- the parameters across hosts differ from the inline run's" >&2
  exit 1
fi
