// What the drawing page exposes as window.__reptile, for its browser test (types only, no DOM).

/** The two networks the page adapts. */
export type NetName = 'meta' | 'random';

export interface DrawingState {
  page: 'drawing';
  status: 'loading' | 'ready' | 'error';
  error: string | null;
  /** The tfjs backend the page loads the models with (and runs them on under `?engine=tfjs`). */
  backend: string;
  /** Which engine adapts the networks: the library's WebAssembly engine, or tfjs (`?engine=tfjs`, or its fallback). */
  engine: 'wasm' | 'tfjs' | '';
  /** Why the page runs on that engine (one line). */
  engineNote: string;
  steps: number;
  /** Each box's drawing at the network's resolution, '1' paper and '0' ink (classes, then the query). */
  bitmaps: string[];
  /** Adaptations run to their end. */
  runs: number;
  running: boolean;
  /** The last adaptation to the class drawings that ran to its end: steps, and ms from the class box's last stroke. */
  lastAdapt: { steps: number; ms: number } | null;
  /** The last prediction: class probabilities of the query for each network, and the time from the stroke that started it. */
  last: { steps: number; ms: number; results: Record<NetName, { probabilities: number[]; predicted: number }> } | null;
  /** Centre of cell (row, col) of box `box` in viewport coordinates, and one cell's width there, for drawing on it. */
  cellToClient(box: number, row: number, col: number): { x: number; y: number; cell: number };
}
