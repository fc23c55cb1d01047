import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain ESM script without type declarations
import { findViolations } from '../scripts/check-layers.mjs';
import { tempDir } from './helpers/fixtures.js';

const check = findViolations as (srcDir: string) => string[];

function tree(files: Record<string, string>): string {
  const root = tempDir();
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  }
  return root;
}

describe('layer check (docs/architecture.md, "Layers")', () => {
  it('finds no upward import in src/', () => {
    expect(check(path.resolve(import.meta.dirname, '..', 'src'))).toEqual([]);
  });

  it('flags an upward import, a dynamic one, an unknown folder, and leaves allowed ones alone', () => {
    const root = tree({
      'core/a.ts': "import { x } from '../train/meta-train.js';\n",
      'tasks/b.ts': "import { y } from '../core/a.js';\nexport { z } from '../_utils/errors.js';\n",
      'engine/c.ts': "const m = await import('../learners/tfjs.js');\n",
      'learners/d.ts': "import type { T } from '../tasks/b.js';\nimport * as tf from '@tensorflow/tfjs';\n",
      'extra/e.ts': 'export const e = 1;\n',
      'index.ts': "export * from './cli/main.js';\n",
    });
    const problems = check(root);
    expect(problems).toHaveLength(3);
    expect(problems.find((p) => p.includes('core/a.ts'))).toMatch(/from train, but core\/ may import no other layer/);
    expect(problems.find((p) => p.includes('engine/c.ts'))).toMatch(/from learners, but engine\/ may import only core/);
    expect(problems.find((p) => p.includes('extra/e.ts'))).toMatch(/not in the layer table/);
  });
});
