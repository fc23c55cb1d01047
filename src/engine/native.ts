import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

import type { NativeEngine, NativeIsa, NativePlan } from './native-plan.js';

export type { NativeIsa, NativeOp, NativeActivation, NativeWindow, NativePlan, NativeLoss, NativeAdaptArgs, NativeAdaptResult, NativeFitArgs, NativeEngine } from './native-plan.js';

/** The addon's exports. */
export interface NativeAddon {
  Engine: new (plan: NativePlan) => NativeEngine;
  supportedIsas(): string[];
  /** The compiler that built the binary ("g++ 12.2.0", "clang 14.0.6", …). */
  compiler(): string;
}

/** Whether the addon loaded, and if not, why (one line). */
export type NativeStatus = { ok: true; addon: NativeAddon; path: string } | { ok: false; reason: string };

let cached: NativeStatus | undefined;

/**
 * Loads the C++ engine: a source build made by `npm install` (native/build/Release) where there is
 * one, else the prebuilt binary shipped in the package for this platform (native/prebuilds), found by
 * node-gyp-build, so that installs that skip install scripts still get it. Returns why it is
 * unavailable instead of throwing, so that callers can fall back to TensorFlow.js.
 * `REPTILE_NATIVE=off` simulates a missing addon; `REPTILE_NATIVE_ADDON` points at another build.
 */
export function loadNative(): NativeStatus {
  if (cached) return cached;
  cached = tryLoad();
  return cached;
}

const nativeDir = fileURLToPath(new URL('../../native/', import.meta.url));

function tryLoad(): NativeStatus {
  const switchValue = process.env.REPTILE_NATIVE?.toLowerCase();
  if (switchValue === 'off' || switchValue === '0' || switchValue === 'false') {
    return { ok: false, reason: 'it is switched off by REPTILE_NATIVE=off' };
  }
  const require = createRequire(import.meta.url);
  let file = process.env.REPTILE_NATIVE_ADDON;
  if (file === undefined) {
    try {
      file = (require('node-gyp-build') as { path(dir: string): string }).path(nativeDir);
    } catch {
      return {
        ok: false,
        reason: `the addon was not built and no prebuilt binary ships for ${process.platform}-${process.arch} (run npm install with g++ or clang, make and python3 available, see native/build.log)`,
      };
    }
  } else if (!existsSync(file)) {
    return { ok: false, reason: `REPTILE_NATIVE_ADDON names ${file}, which does not exist` };
  }
  try {
    const addon = require(file) as NativeAddon;
    if (typeof addon.Engine !== 'function') return { ok: false, reason: `${file} is not the reptile-ml addon` };
    return { ok: true, addon, path: file };
  } catch (e) {
    return { ok: false, reason: `the addon failed to load (${(e as Error).message.split('\n')[0]})` };
  }
}

/**
 * Threads per native engine: `REPTILE_NATIVE_THREADS` (1 or 2), else 2 where the machine has two
 * or more CPUs. Results do not depend on it (each batch is split into the same two shards).
 */
export function requestedThreads(): 1 | 2 {
  const v = process.env.REPTILE_NATIVE_THREADS;
  if (v === '1' || v === '2') return v === '2' ? 2 : 1;
  return os.availableParallelism() >= 2 ? 2 : 1;
}

/** The instruction set requested through `REPTILE_NATIVE_ISA` (for checks of each kernel variant). */
export function requestedIsa(): NativeIsa {
  const v = process.env.REPTILE_NATIVE_ISA;
  return v === 'avx512' || v === 'avx2' || v === 'generic' ? v : 'auto';
}
