#!/usr/bin/env node
/* global process, console */
// Prints docs/distributed.md's policy table from the JSON results scripts/policy-table.sh writes.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const dir = process.argv[2] ?? 'docs/results/policy';
const rows = {};
for (const name of readdirSync(dir).filter((n) => n.endsWith('.json'))) {
  const m = /^(carry|shared|reset)-(\d+)-seed(\d+)\.json$/.exec(name);
  if (!m) continue;
  const r = JSON.parse(readFileSync(path.join(dir, name), 'utf8'));
  (rows[`${m[1]}|${m[2]}`] ??= []).push({ seed: Number(m[3]), accuracy: r.test.accuracy, ci95: r.test.ci95, seconds: r.seconds });
}
const fmt = (x) => x.toFixed(3);
console.log('| policy | meta-iterations | seeds | test accuracy per seed (±95% CI) | mean over seeds | training time per run (two runs at once) |');
console.log('| --- | --- | --- | --- | --- | --- |');
for (const iters of ['500', '5000']) {
  for (const policy of ['carry', 'shared', 'reset']) {
    const list = (rows[`${policy}|${iters}`] ?? []).sort((a, b) => a.seed - b.seed);
    if (list.length === 0) continue;
    const mean = list.reduce((s, r) => s + r.accuracy, 0) / list.length;
    const secs = list.reduce((s, r) => s + r.seconds, 0) / list.length;
    console.log(`| \`${policy}\` | ${iters} | ${list.map((r) => r.seed).join(', ')} | ${list.map((r) => `${fmt(r.accuracy)} ± ${fmt(r.ci95)}`).join('; ')} | ${fmt(mean)} | ${secs.toFixed(0)} s |`);
  }
}
