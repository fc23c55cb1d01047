import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { reptile } from './helpers/cli.js';
import { tempDir } from './helpers/fixtures.js';

describe('reptile demo sine (end to end, default settings)', () => {
  it.each(['auto', 'tfjs'])('meta-learned init beats random init by 4x and joint training by 2x, and writes its plots (learner %s)', (learner) => {
    const out = tempDir();
    const r = reptile(['demo', 'sine', '--json', '--out', out, '--learner', learner], { timeoutMs: 300_000 });
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as { mse: { metaLearned: number; random: number; joint: number }; files: string[]; learner: string };
    if (learner === 'tfjs') expect(result.learner).toBe('tfjs');
    expect(result.mse.metaLearned).toBeLessThanOrEqual(result.mse.random / 4);
    expect(result.mse.metaLearned).toBeLessThanOrEqual(result.mse.joint / 2);
    for (const name of ['sine-adaptation.svg', 'sine-learning-curve.svg', 'result.json']) {
      const file = path.join(out, name);
      expect(fs.existsSync(file), file).toBe(true);
    }
    // Three panels, each with the truth, the support points and the adapted curves, and one legend.
    const svg = fs.readFileSync(path.join(out, 'sine-adaptation.svg'), 'utf8');
    expect(svg).toMatch(/^<svg[\s\S]*<\/svg>$/);
    expect(svg.match(/aria-label="Title text 'a = [\d.]+, b = [\d.]+'"/g)).toHaveLength(3);
    expect(svg.match(/series: truth" role="graphics-symbol" aria-roledescription="line mark"/g)).toHaveLength(3);
    for (const name of ['support points', 'meta-learned, before', 'meta-learned, after 32 steps', 'random, after 32 steps', 'joint, after 32 steps']) expect(svg).toContain(`>${name}</text>`);
    const curve = fs.readFileSync(path.join(out, 'sine-learning-curve.svg'), 'utf8');
    expect(curve).toContain('MSE (log scale)');
  }, 300_000);
});
