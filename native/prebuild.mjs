/* global process, console */
// Makes the prebuilt binary that `npm pack` ships (native/prebuilds/<platform>-<arch>/), with
// prebuildify: one N-API build serves every Node version the package supports, and the kernels pick
// the instruction set at run time, so one binary serves every x64 machine.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findNodeGyp, localNodeDir } from './gyp.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const bin = createRequire(import.meta.url).resolve('prebuildify/bin.js');
const nodedir = localNodeDir();
const env = { ...process.env, ...(nodedir ? { npm_config_nodedir: nodedir } : {}) };
const gyp = findNodeGyp();
const gypArgs = gyp ? ['--node-gyp', gyp] : [];
const run = spawnSync(process.execPath, [bin, '--napi', '--strip', '--target', `node@${process.versions.node}`, ...gypArgs], { cwd: here, env, stdio: ['ignore', 'ignore', 'inherit'] });
if (run.status !== 0) {
  console.error(`reptile-ml: the prebuilt native engine could not be made (prebuildify exited with ${run.status ?? run.signal}); fix the C++ build first (node native/build.mjs, native/build.log)`);
  process.exit(1);
}
// prebuildify moves the binary out of build/Release; the checkout keeps its own copy in place.
const dir = path.join(here, 'prebuilds', `${process.platform}-${process.arch}`);
const made = readdirSync(dir).find((f) => f.endsWith('.node'));
const local = path.join(here, 'build', 'Release', 'reptile_native.node');
if (made && !existsSync(local)) {
  mkdirSync(path.dirname(local), { recursive: true });
  copyFileSync(path.join(dir, made), local);
}
console.log(`reptile-ml: prebuilt native engine in native/prebuilds/${process.platform}-${process.arch}`);
