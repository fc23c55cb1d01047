/* global process, console */
// Builds the native engine during `npm install` with node-gyp. It never fails the install: when
// the build cannot run, it says so in one line and the package works on TensorFlow.js instead.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findNodeGyp, localNodeDir } from './gyp.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const fallback = (why) => {
  console.log(`reptile-ml: native engine not built, falling back to tfjs (slower) because ${why}`);
  process.exit(0);
};

if (process.env.REPTILE_SKIP_NATIVE_BUILD) fallback('REPTILE_SKIP_NATIVE_BUILD is set');

// A published package carries a prebuilt binary for linux-x64 (made by `npm pack`): where it loads,
// a source build would only reproduce it. REPTILE_BUILD_FROM_SOURCE=1 builds anyway.
const prebuilt = path.join(here, 'prebuilds', `${process.platform}-${process.arch}`);
if (!process.env.REPTILE_BUILD_FROM_SOURCE && existsSync(prebuilt)) {
  const file = readdirSync(prebuilt).find((f) => f.endsWith('.node'));
  if (file) {
    try {
      createRequire(import.meta.url)(path.join(prebuilt, file));
      console.log(`reptile-ml: using the prebuilt native engine for ${process.platform}-${process.arch}`);
      process.exit(0);
    } catch (e) {
      console.log(`reptile-ml: the prebuilt native engine does not load here (${String(e.message).split('\n')[0]}); building from source`);
    }
  }
}

const gyp = findNodeGyp();
if (gyp === undefined) fallback('node-gyp was not found (it ships with npm)');

// Without local headers node-gyp fetches them.
const nodedir = localNodeDir();
const args = [gyp, 'rebuild', ...(nodedir ? [`--nodedir=${nodedir}`] : [])];

const run = spawnSync(process.execPath, args, { cwd: here, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
const log = `${run.stdout ?? ''}${run.stderr ?? ''}`;
try {
  writeFileSync(path.join(here, 'build.log'), log);
} catch {
  // A read-only package directory only loses the log.
}
if (run.error) fallback(`node-gyp could not start (${run.error.message})`);
if (run.status !== 0) {
  const line = log.split('\n').find((l) => /error/i.test(l) && !/gyp ERR! (stack|System|command|cwd|node -v|node-gyp -v|not ok)/.test(l));
  fallback(`the C++ build failed (${(line ?? `node-gyp exited with ${run.status}`).trim()}; full log in native/build.log)`);
}
console.log('reptile-ml: native engine built');
