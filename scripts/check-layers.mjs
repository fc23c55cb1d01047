#!/usr/bin/env node
/* global process, console */
// Fails when a file under src/ imports a layer above its own (docs/architecture.md, "Layers"): the table
// below is that table, folder by folder. Files directly in src/ (the package entries) and the
// private src/_utils/ module may be imported from anywhere; _utils imports no layer.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Each layer and the layers it may import (besides itself and _utils). */
export const LAYERS = {
  _utils: [],
  core: [],
  tasks: ['core'],
  data: ['core', 'tasks'],
  engine: ['core'],
  learners: ['core', 'tasks', 'engine'],
  optim: ['core', 'engine'],
  fit: ['core', 'engine', 'learners', 'optim'],
  exec: ['core', 'tasks', 'data', 'engine', 'learners', 'optim', 'fit'],
  train: ['core', 'tasks', 'data', 'engine', 'learners', 'optim', 'fit', 'exec'],
  recipes: ['core', 'tasks', 'data', 'engine', 'learners', 'optim', 'fit', 'exec', 'train'],
  cli: ['core', 'tasks', 'data', 'engine', 'learners', 'optim', 'fit', 'exec', 'train', 'recipes'],
};

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function* sourceFiles(dir) {
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) yield* sourceFiles(p);
    else if (/\.(ts|mts|js|mjs)$/.test(name) && !name.endsWith('.d.ts')) yield p;
  }
}

/** Every import in `srcDir` that goes against `LAYERS`, as "file: imports target (layer may import ...)" lines. */
export function findViolations(srcDir) {
  const problems = [];
  for (const file of sourceFiles(srcDir)) {
    const rel = path.relative(srcDir, file).split(path.sep);
    if (rel.length < 2) continue;
    const layer = rel[0];
    const allowed = LAYERS[layer];
    if (allowed === undefined) {
      problems.push(`${path.relative(process.cwd(), file)}: folder src/${layer}/ is not in the layer table: add it to docs/architecture.md and scripts/check-layers.mjs`);
      continue;
    }
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1] ?? m[2];
      if (!spec.startsWith('.')) continue;
      const target = path.relative(srcDir, path.resolve(path.dirname(file), spec)).split(path.sep);
      if (target[0] === '..') {
        problems.push(`${path.relative(process.cwd(), file)}: imports '${spec}', outside src/`);
        continue;
      }
      const to = target.length < 2 ? '(package entry)' : target[0];
      if (to === layer || to === '_utils') continue;
      if (!allowed.includes(to)) {
        problems.push(`${path.relative(process.cwd(), file)}: imports '${spec}' from ${to}, but ${layer}/ may import ${allowed.length > 0 ? `only ${allowed.join(', ')}` : 'no other layer'} (docs/architecture.md, "Layers")`);
      }
    }
  }
  return problems;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const srcDir = path.resolve(process.argv[2] ?? 'src');
  const problems = findViolations(srcDir);
  for (const p of problems) console.error(p);
  if (problems.length > 0) {
    console.error(`layer check: ${problems.length} import(s) against the layers of docs/architecture.md`);
    process.exit(1);
  }
  console.log('layer check: every import in src/ follows the layers of docs/architecture.md');
}
