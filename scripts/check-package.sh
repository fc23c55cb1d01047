#!/usr/bin/env bash
# Packs the library as it would be published, installs the tarball into an empty project with
# install scripts skipped (as pnpm and bun do by default), and checks that the prebuilt native
# engine is the one in use: loaded from native/prebuilds, and the sine demo runs on it; then that
# the demo, and a short Omniglot training where the archives are at hand, run on the WebAssembly
# engine with the addon switched off.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$root" && npm pack --silent --pack-destination "$work" >/dev/null)
tarball="$(ls "$work"/reptile-ml-*.tgz)"
mkdir "$work/app"
cd "$work/app"
npm init -y >/dev/null
npm install --ignore-scripts --no-audit --no-fund "$tarball" >/dev/null

node --input-type=module -e "
import { loadNative } from 'reptile-ml';
const s = loadNative();
if (!s.ok) { console.error('check-package: the installed package has no native engine: ' + s.reason); process.exit(1); }
if (!s.path.includes('/prebuilds/')) { console.error('check-package: expected the prebuilt binary, loaded ' + s.path); process.exit(1); }
console.log('check-package: prebuilt engine ' + s.path.slice(s.path.indexOf('native/')) + ' (' + s.addon.compiler() + ', kernels ' + s.addon.supportedIsas().join(', ') + ')');
"
SECONDS=0
out="$(npx --no-install reptile demo sine 2>&1)"
if ! grep -q 'native learner' <<<"$out"; then
  echo "check-package: reptile demo sine did not run on the native learner:" >&2
  tail -5 <<<"$out" >&2
  exit 1
fi
echo "check-package: reptile demo sine on the prebuilt engine: $(tail -1 <<<"$out") (${SECONDS} s wall)"

# Without the addon (switched off, as on a platform with no prebuilt binary and no compiler): the
# engine compiled to WebAssembly, shipped in the package, runs the demo.
SECONDS=0
out="$(REPTILE_NATIVE=off npx --no-install reptile demo sine 2>&1)"
if ! grep -q 'wasm learner' <<<"$out" || ! grep -q 'using the WebAssembly engine' <<<"$out"; then
  echo "check-package: with REPTILE_NATIVE=off, reptile demo sine did not run on the WebAssembly engine:" >&2
  tail -5 <<<"$out" >&2
  exit 1
fi
echo "check-package: reptile demo sine on the WebAssembly engine: $(tail -1 <<<"$out") (${SECONDS} s wall)"

# A short Omniglot training from the tarball on the WebAssembly engine, where the real archives
# are at hand (OMNIGLOT_DIR, else the data folder beside the checkout): 100 meta-iterations of the
# paper's 5-way setting from a random start, then 100 held-out 1-shot tasks, well above chance.
data="${OMNIGLOT_DIR:-$root/../shared/data/omniglot}"
if [[ -f "$data/images_background.zip" && -f "$data/images_evaluation.zip" ]]; then
  SECONDS=0
  out="$(REPTILE_NATIVE=off npx --no-install reptile train --preset omniglot-5w1s --data-dir "$data" --meta-iters 100 --eval-samples 100 --checkpoint "$work/omniglot" 2>&1)" || { echo "check-package: the Omniglot training failed:" >&2; tail -5 <<<"$out" >&2; exit 1; }
  accuracy="$(sed -n 's/^test accuracy: \([0-9.]*\).*/\1/p' <<<"$out")"
  if ! grep -q 'using the WebAssembly engine' <<<"$out" || ! grep -q 'backend wasm' <<<"$out" || [[ -z "$accuracy" ]] || ! awk -v a="$accuracy" 'BEGIN { exit !(a > 0.35) }'; then
    echo "check-package: the Omniglot training did not run on the WebAssembly engine to a held-out accuracy above 35%:" >&2
    tail -5 <<<"$out" >&2
    exit 1
  fi
  echo "check-package: Omniglot 5-way on the WebAssembly engine: $(grep '^meta-trained' <<<"$out"); $(grep '^test accuracy' <<<"$out") (${SECONDS} s wall)"
else
  echo "check-package: no Omniglot archives at $data (set OMNIGLOT_DIR): the short Omniglot training is skipped"
fi
