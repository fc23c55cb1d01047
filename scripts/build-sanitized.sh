#!/usr/bin/env bash
# Builds the native addon with clang, AddressSanitizer and UndefinedBehaviorSanitizer into
# native/build-sanitized/ (the normal build in native/build is left as it is). Needs clang and
# its runtime libraries (Debian: clang, libclang-rt-14-dev). Used by scripts/fuzz-native.mjs.
set -euo pipefail
cd "$(dirname "$0")/.."
out=native/build-sanitized
mkdir -p "$out/obj"
CXX=${CXX:-clang++}
nodeinc="$(node -p "require('node:path').resolve(process.execPath, '../../include/node')")"
addoninc="$(node -p "require('node-addon-api').include_dir")"
flags=(-std=gnu++17 -O1 -g -fno-omit-frame-pointer -fPIC -fexceptions -ffp-contract=fast -fno-math-errno
  -fsanitize=address,undefined -fno-sanitize-recover=undefined
  -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS -I"$nodeinc" -I"$addoninc")
objs=()
for src in addon engine kernels_generic kernels_select kernels_avx2 kernels_avx512; do
  obj="$out/obj/$src.o"
  if [ ! -f "$obj" ] || [ "native/src/$src.cc" -nt "$obj" ] || [ -n "$(find native/src -name '*.h' -newer "$obj" -o -name '*.inc' -newer "$obj")" ]; then
    "$CXX" "${flags[@]}" -c "native/src/$src.cc" -o "$obj" &
  fi
  objs+=("$obj")
done
wait
"$CXX" -shared -fsanitize=address,undefined -shared-libasan -o "$out/reptile_native.node" "${objs[@]}"
echo "$out/reptile_native.node"
