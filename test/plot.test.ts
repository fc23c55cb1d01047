import { describe, expect, it } from 'vitest';
import { plotSpec, renderPlots } from '../src/_utils/plot.js';

type Layer = { data: { values: { series: string; x: number; y: number }[] }; mark: { type: string }; encoding: { strokeDash?: { scale: { domain: string[]; range: number[][] } }; x: { title: string; scale: { type?: string } }; y: { title: string; scale: { type?: string } }; color: { scale: { domain: string[]; range: string[] } } } };

describe('plots (vega-lite specs rendered by vega)', () => {
  const panels = [
    {
      title: 'curve',
      xLabel: 'meta-iteration',
      yLabel: 'MSE',
      logY: true,
      series: [
        { name: 'meta-learned', x: [0, 10, 20, 30], y: [5, Number.NaN, -1, 0.5], color: '#1f77b4' },
        { name: 'meta-learned', x: [0, 30], y: [4, 0.4], color: '#1f77b4', markersOnly: true },
        { name: 'before', x: [0, 30], y: [3, 3], color: '#ff7f0e', dashed: true },
      ],
    },
  ];

  it('leaves out points that are not finite or not positive on a log axis, labels log axes, lists each name once', () => {
    const spec = plotSpec(panels, 1) as unknown as { columns: number; concat: { title: string; layer: Layer[] }[] };
    expect(spec.columns).toBe(1);
    const [line, points, dashed] = spec.concat[0]!.layer;
    expect(line!.data.values).toEqual([
      { series: 'meta-learned', x: 0, y: 5 },
      { series: 'meta-learned', x: 30, y: 0.5 },
    ]);
    expect(line!.mark.type).toBe('line');
    expect(points!.mark.type).toBe('point');
    expect(dashed!.encoding.strokeDash!.scale).toEqual({ domain: ['meta-learned', 'before'], range: [[1, 0], [6, 4]] });
    expect(line!.encoding.y.title).toBe('MSE (log scale)');
    expect(line!.encoding.y.scale.type).toBe('log');
    expect(line!.encoding.x.title).toBe('meta-iteration');
    expect(line!.encoding.x.scale.type).toBeUndefined();
    expect(line!.encoding.color.scale.domain).toEqual(['meta-learned', 'before']);
    expect(line!.encoding.color.scale.range).toEqual(['#1f77b4', '#ff7f0e']);
  });

  it('renders a standalone SVG with the title, axis labels, round ticks and the legend', async () => {
    const svg = await renderPlots(panels, 1);
    expect(svg.startsWith('<svg')).toBe(true);
    for (const text of ['curve', 'MSE (log scale)', 'meta-iteration', 'meta-learned', 'before', '>0.5<', '>1<', '>10<']) expect(svg).toContain(text);
  });
});
