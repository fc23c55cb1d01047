/** A 2-D view from data coordinates to a canvas, with the few drawing primitives the demos need. */
export interface View {
  readonly xMin: number;
  readonly xMax: number;
  readonly yMin: number;
  readonly yMax: number;
}

/** A canvas set up for crisp drawing at the device's pixel ratio, in CSS-pixel coordinates. */
export class Plot {
  readonly ctx: CanvasRenderingContext2D;
  readonly width: number;
  readonly height: number;
  private readonly pad = { left: 34, right: 8, top: 8, bottom: 22 };

  constructor(
    readonly canvas: HTMLCanvasElement,
    public view: View,
  ) {
    const ratio = window.devicePixelRatio || 1;
    this.width = canvas.clientWidth || canvas.width;
    this.height = canvas.clientHeight || canvas.height;
    canvas.width = Math.round(this.width * ratio);
    canvas.height = Math.round(this.height * ratio);
    const ctx = canvas.getContext('2d');
    if (!ctx) throw new Error('this browser gives no 2-D canvas');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    this.ctx = ctx;
  }

  /** Canvas (CSS pixel) position of a data point. */
  toCanvas(x: number, y: number): [number, number] {
    const { xMin, xMax, yMin, yMax } = this.view;
    const w = this.width - this.pad.left - this.pad.right;
    const h = this.height - this.pad.top - this.pad.bottom;
    return [this.pad.left + ((x - xMin) / (xMax - xMin)) * w, this.pad.top + ((yMax - y) / (yMax - yMin)) * h];
  }

  /** Data coordinates of a canvas (CSS pixel) position. */
  toData(cx: number, cy: number): [number, number] {
    const { xMin, xMax, yMin, yMax } = this.view;
    const w = this.width - this.pad.left - this.pad.right;
    const h = this.height - this.pad.top - this.pad.bottom;
    return [xMin + ((cx - this.pad.left) / w) * (xMax - xMin), yMax - ((cy - this.pad.top) / h) * (yMax - yMin)];
  }

  clear(xTicks: readonly number[], yTicks: readonly number[], format: (v: number) => string = String, yFormat: (v: number) => string = format): void {
    const c = this.ctx;
    c.clearRect(0, 0, this.width, this.height);
    c.fillStyle = '#fff';
    c.fillRect(0, 0, this.width, this.height);
    c.strokeStyle = '#e6e6e6';
    c.lineWidth = 1;
    c.fillStyle = '#666';
    c.font = '11px system-ui, sans-serif';
    for (const t of xTicks) {
      const [x] = this.toCanvas(t, this.view.yMin);
      this.segment(x, this.pad.top, x, this.height - this.pad.bottom);
      c.textAlign = 'center';
      c.fillText(format(t), x, this.height - 6);
    }
    for (const t of yTicks) {
      const [, y] = this.toCanvas(this.view.xMin, t);
      this.segment(this.pad.left, y, this.width - this.pad.right, y);
      c.textAlign = 'right';
      c.fillText(yFormat(t), this.pad.left - 4, y + 4);
    }
  }

  line(xs: ArrayLike<number>, ys: ArrayLike<number>, color: string, options: { width?: number; dashed?: boolean } = {}): void {
    const c = this.ctx;
    c.save();
    c.beginPath();
    c.rect(this.pad.left, this.pad.top, this.width - this.pad.left - this.pad.right, this.height - this.pad.top - this.pad.bottom);
    c.clip();
    c.strokeStyle = color;
    c.lineWidth = options.width ?? 2;
    c.setLineDash(options.dashed ? [5, 4] : []);
    c.beginPath();
    for (let i = 0; i < xs.length; i++) {
      const [x, y] = this.toCanvas(xs[i]!, ys[i]!);
      if (i === 0) c.moveTo(x, y);
      else c.lineTo(x, y);
    }
    c.stroke();
    c.restore();
  }

  dots(xs: ArrayLike<number>, ys: ArrayLike<number>, color: string, radius = 5): void {
    const c = this.ctx;
    c.fillStyle = color;
    c.strokeStyle = '#fff';
    c.lineWidth = 1.5;
    for (let i = 0; i < xs.length; i++) {
      const [x, y] = this.toCanvas(xs[i]!, ys[i]!);
      c.beginPath();
      c.arc(x, y, radius, 0, 2 * Math.PI);
      c.fill();
      c.stroke();
    }
  }

  label(text: string, color = '#222'): void {
    this.ctx.fillStyle = color;
    this.ctx.font = '12px system-ui, sans-serif';
    this.ctx.textAlign = 'left';
    this.ctx.fillText(text, this.pad.left + 6, this.pad.top + 14);
  }

  private segment(x0: number, y0: number, x1: number, y1: number): void {
    this.ctx.beginPath();
    this.ctx.moveTo(x0, y0);
    this.ctx.lineTo(x1, y1);
    this.ctx.stroke();
  }
}
