import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { writeFileAtomicSync } from '../_utils/atomic-write.js';
import { plotSpec, renderSvg, type PlotSpec } from '../_utils/plot.js';

/** One progress line of a few-shot run, as `progress.jsonl` and `reptile train --json` write it. */
export interface ProgressLine {
  iteration: number;
  /** Accuracy on the sampled training task(s) of this interval. */
  train: number;
  /** Accuracy on the sampled test task(s) of this interval. */
  test: number;
  loss: number;
  epsilon: number;
  seconds: number;
  imagesPerSecond: number;
}

/** Reads a progress file (one JSON object per line; a `.gz` file is decompressed); unreadable lines are skipped. */
export function readProgress(file: string): ProgressLine[] {
  if (!fs.existsSync(file)) return [];
  let text = fs.readFileSync(file);
  if (file.endsWith('.gz')) text = zlib.gunzipSync(text);
  const out: ProgressLine[] = [];
  for (const line of text.toString('utf8').split('\n')) {
    if (line.trim() === '') continue;
    try {
      const p = JSON.parse(line) as ProgressLine;
      if (Number.isFinite(p.iteration) && Number.isFinite(p.train) && Number.isFinite(p.test)) out.push(p);
    } catch {
      // A line cut short by a killed process is dropped; the lines before it stay.
    }
  }
  return out;
}

/**
 * Keeps the lines of a progress file up to `iteration` (where a resumed run continues from) and
 * drops the rest, which the resumed run writes again; a missing file is created empty.
 */
export function trimProgress(file: string, iteration: number): void {
  const kept = readProgress(file).filter((p) => p.iteration <= iteration);
  writeFileAtomicSync(file, kept.map((p) => `${JSON.stringify(p)}\n`).join(''));
}

/**
 * Mean of the progress lines in windows of meta-iterations: one sampled task per interval is a
 * noisy estimate (with 5 queries, an accuracy of 0, 0.2, …, 1), so the curve shows window means.
 */
export function smoothProgress(lines: readonly ProgressLine[], points = 100): { iteration: number; train: number; test: number }[] {
  if (lines.length === 0) return [];
  const per = linesPerWindow(lines.length, points);
  const out: { iteration: number; train: number; test: number }[] = [];
  for (let i = 0; i < lines.length; i += per) {
    const w = lines.slice(i, i + per);
    out.push({
      iteration: w[w.length - 1]!.iteration,
      train: w.reduce((s, p) => s + p.train, 0) / w.length,
      test: w.reduce((s, p) => s + p.test, 0) / w.length,
    });
  }
  return out;
}

// Progress lines averaged into one point of the curve.
function linesPerWindow(count: number, points: number): number {
  return Math.max(1, Math.round(count / points));
}

const CURVE_POINTS = 100;

/** The learning-curve panel: train and test accuracy of sampled tasks against meta-iteration. */
export function learningCurvePanel(lines: readonly ProgressLine[], title: string): PlotSpec {
  const pts = smoothProgress(lines, CURVE_POINTS);
  const per = linesPerWindow(lines.length, CURVE_POINTS);
  const span = lines.length > 1 ? (lines[lines.length - 1]!.iteration - lines[0]!.iteration) / (lines.length - 1) : 0;
  return {
    title,
    ...(per > 1 ? { subtitle: `means over windows of ${Math.round(per * span)} meta-iterations` } : {}),
    xLabel: 'meta-iteration',
    yLabel: 'accuracy',
    series: [
      { name: 'training tasks', x: pts.map((p) => p.iteration), y: pts.map((p) => p.train), color: '#1f77b4' },
      { name: 'test tasks', x: pts.map((p) => p.iteration), y: pts.map((p) => p.test), color: '#d62728' },
    ],
  };
}

/**
 * Writes `learning-curve.svg` and its vega-lite specification `learning-curve.vl.json` into `dir`
 * from the progress lines; returns the SVG's path, or undefined when there are no lines yet.
 */
export async function writeLearningCurve(dir: string, lines: readonly ProgressLine[], title = 'Accuracy of sampled tasks'): Promise<string | undefined> {
  if (lines.length === 0) return undefined;
  const spec = plotSpec([learningCurvePanel(lines, title)], 1);
  const svgFile = path.join(dir, 'learning-curve.svg');
  writeFileAtomicSync(svgFile, await renderSvg(spec));
  writeFileAtomicSync(path.join(dir, 'learning-curve.vl.json'), `${JSON.stringify(spec, null, 1)}\n`);
  return svgFile;
}
