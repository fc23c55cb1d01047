import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { TopLevelSpec } from 'vega-lite';

/** One line (or set of markers) on a plot. */
export interface Series {
  name: string;
  x: readonly number[];
  y: readonly number[];
  color: string;
  dashed?: boolean;
  /** Draw markers only, no line. */
  markersOnly?: boolean;
}

/** A single panel. */
export interface PlotSpec {
  title: string;
  /** A second, smaller title line. */
  subtitle?: string;
  xLabel?: string;
  yLabel?: string;
  series: readonly Series[];
  logY?: boolean;
  logX?: boolean;
}

const PANEL_W = 360;
const PANEL_H = 240;

type Row = { series: string; x: number; y: number };

/**
 * The vega-lite specification of a grid of panels (`columns` per row) that share one colour legend.
 * Points that are not finite, or not positive on a log axis, are left out. The same object can be
 * embedded in a web page with vega-embed, or rendered to SVG by `renderSvg`.
 */
export function plotSpec(panels: readonly PlotSpec[], columns = panels.length): TopLevelSpec {
  // One legend entry per name, in order of first appearance, with that entry's colour.
  const legend = new Map<string, string>();
  const dashes = new Map<string, number[]>();
  for (const p of panels) {
    for (const s of p.series) {
      if (legend.has(s.name)) continue;
      legend.set(s.name, s.color);
      dashes.set(s.name, s.dashed ? [6, 4] : [1, 0]);
    }
  }
  const color = {
    field: 'series',
    type: 'nominal' as const,
    title: null,
    scale: { domain: [...legend.keys()], range: [...legend.values()] },
    legend: { orient: 'bottom' as const, direction: 'horizontal' as const, columns: Math.min(legend.size, 4), symbolType: 'stroke', labelLimit: 320 },
  };
  // The same field, title and legend as the colour, so that vega-lite draws one legend whose
  // symbols are dashed where the lines are.
  const strokeDash = { ...color, scale: { domain: [...dashes.keys()], range: [...dashes.values()] } };
  const panelSpec = (p: PlotSpec) => {
    const rows = (s: Series): Row[] => {
      const out: Row[] = [];
      const n = Math.min(s.x.length, s.y.length);
      for (let i = 0; i < n; i++) {
        const x = s.x[i]!;
        const y = s.y[i]!;
        if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
        if ((p.logX && x <= 0) || (p.logY && y <= 0)) continue;
        out.push({ series: s.name, x, y });
      }
      return out;
    };
    const axisTitle = (label: string | undefined, log: boolean | undefined) => (label === undefined ? null : log ? `${label} (log scale)` : label);
    const x = { field: 'x', type: 'quantitative' as const, title: axisTitle(p.xLabel, p.logX), scale: p.logX ? { type: 'log' as const } : { zero: false } };
    const y = { field: 'y', type: 'quantitative' as const, title: axisTitle(p.yLabel, p.logY), scale: p.logY ? { type: 'log' as const } : { zero: false } };
    const layer = p.series.map((s) =>
      s.markersOnly
        ? { data: { values: rows(s) }, mark: { type: 'point' as const, filled: true, size: 36, opacity: 0.8 }, encoding: { x, y, color } }
        : {
            data: { values: rows(s) },
            mark: { type: 'line' as const, strokeWidth: 2 },
            encoding: { x, y, color, strokeDash, order: { field: 'x', type: 'quantitative' as const } },
          },
    );
    return { title: p.subtitle === undefined ? p.title : { text: p.title, subtitle: p.subtitle }, width: PANEL_W, height: PANEL_H, layer };
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    columns,
    concat: panels.map(panelSpec),
    resolve: { scale: { color: 'shared' } },
    background: 'white',
    config: { font: 'sans-serif', view: { stroke: '#ddd' }, axis: { grid: true, gridColor: '#eee' } },
  } as TopLevelSpec;
}

/** Renders a vega-lite specification to a standalone SVG document (in Node: no canvas or browser needed). */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Renders panels in a grid as one standalone SVG document, with a shared legend below. */
export async function renderPlots(panels: readonly PlotSpec[], columns = panels.length): Promise<string> {
  return renderSvg(plotSpec(panels, columns));
}
