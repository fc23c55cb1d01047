#!/usr/bin/env bash
# Packs the library as it would be published, installs the tarball into an empty project with
# install scripts skipped (as pnpm and bun do by default), and checks that the prebuilt native
# engine is the one in use: loaded from native/prebuilds, and the sine demo runs on it; then that
# the demo runs on the WebAssembly engine with the addon switched off.
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
