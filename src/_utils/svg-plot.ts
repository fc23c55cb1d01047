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
  xLabel?: string;
  yLabel?: string;
  series: readonly Series[];
  logY?: boolean;
  logX?: boolean;
}

const PANEL_W = 420;
const PANEL_H = 300;
const M = { left: 68, right: 12, top: 28, bottom: 44 };

/** Renders panels in a grid as one standalone SVG document, with a shared legend below. */
export function renderPlots(panels: readonly PlotSpec[], columns = panels.length): string {
  const rows = Math.ceil(panels.length / columns);
  const legendNames = new Map<string, Series>();
  for (const p of panels) for (const s of p.series) if (!legendNames.has(s.name)) legendNames.set(s.name, s);
  const legendH = 26;
  const width = columns * PANEL_W;
  const height = rows * PANEL_H + legendH;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
  ];
  panels.forEach((p, i) => parts.push(renderPanel(p, (i % columns) * PANEL_W, Math.floor(i / columns) * PANEL_H)));
  let lx = 12;
  for (const s of legendNames.values()) {
    const y = rows * PANEL_H + 14;
    parts.push(
      s.markersOnly
        ? `<circle cx="${lx + 10}" cy="${y}" r="3.5" fill="${s.color}"/>`
        : `<line x1="${lx}" y1="${y}" x2="${lx + 20}" y2="${y}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5,3"' : ''}/>`,
    );
    parts.push(`<text x="${lx + 26}" y="${y + 4}">${escape(s.name)}</text>`);
    lx += 36 + s.name.length * 7;
  }
  parts.push('</svg>');
  return parts.join('\n');
}

function renderPanel(p: PlotSpec, ox: number, oy: number): string {
  const tx = (v: number) => (p.logX ? Math.log10(v) : v);
  const ty = (v: number) => (p.logY ? Math.log10(v) : v);
  const xs = p.series.flatMap((s) => s.x.map(tx)).filter(Number.isFinite);
  const ys = p.series.flatMap((s) => s.y.map(ty)).filter(Number.isFinite);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (!(x1 > x0)) [x0, x1] = [x0 - 1, x0 + 1];
  if (!(y1 > y0)) [y0, y1] = [y0 - 1, y0 + 1];
  const pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  const w = PANEL_W - M.left - M.right;
  const h = PANEL_H - M.top - M.bottom;
  const sx = (v: number) => ox + M.left + ((tx(v) - x0) / (x1 - x0)) * w;
  const sy = (v: number) => oy + M.top + h - ((ty(v) - y0) / (y1 - y0)) * h;
  const out: string[] = [];
  out.push(`<rect x="${ox + M.left}" y="${oy + M.top}" width="${w}" height="${h}" fill="none" stroke="#888"/>`);
  out.push(`<text x="${ox + PANEL_W / 2}" y="${oy + 18}" text-anchor="middle" font-weight="bold">${escape(p.title)}</text>`);
  for (let k = 0; k <= 4; k++) {
    const xv = x0 + ((x1 - x0) * k) / 4;
    const yv = y0 + ((y1 - y0) * k) / 4;
    const px = ox + M.left + (w * k) / 4;
    const py = oy + M.top + h - (h * k) / 4;
    out.push(`<line x1="${px}" y1="${oy + M.top + h}" x2="${px}" y2="${oy + M.top + h + 4}" stroke="#888"/>`);
    out.push(`<text x="${px}" y="${oy + M.top + h + 16}" text-anchor="middle">${tick(p.logX ? 10 ** xv : xv, p.logX ? 0 : x1 - x0)}</text>`);
    out.push(`<line x1="${ox + M.left - 4}" y1="${py}" x2="${ox + M.left}" y2="${py}" stroke="#888"/>`);
    out.push(`<text x="${ox + M.left - 6}" y="${py + 4}" text-anchor="end">${tick(p.logY ? 10 ** yv : yv, p.logY ? 0 : y1 - y0)}</text>`);
  }
  if (p.xLabel) out.push(`<text x="${ox + M.left + w / 2}" y="${oy + PANEL_H - 8}" text-anchor="middle">${escape(p.xLabel)}</text>`);
  if (p.yLabel) {
    out.push(`<text transform="translate(${ox + 12},${oy + M.top + h / 2}) rotate(-90)" text-anchor="middle">${escape(p.yLabel)}</text>`);
  }
  for (const s of p.series) {
    const pts = s.x.map((x, i) => [sx(x), sy(s.y[i]!)] as const).filter(([a, b]) => Number.isFinite(a) && Number.isFinite(b));
    if (s.markersOnly) {
      for (const [a, b] of pts) out.push(`<circle cx="${a.toFixed(1)}" cy="${b.toFixed(1)}" r="3.5" fill="${s.color}"/>`);
    } else {
      const d = pts.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(' ');
      out.push(`<polyline points="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5,3"' : ''}/>`);
    }
  }
  return out.join('\n');
}

// `range` lets a tick that is zero up to rounding (−3.4e-3 on a ±5 axis) print as 0.
function tick(v: number, range: number): string {
  const a = Math.abs(v);
  if (a < range * 1e-3) return '0';
  if (a !== 0 && (a >= 1e4 || a < 1e-2)) return v.toExponential(1);
  return Number(v.toPrecision(3)).toString();
}

function escape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
