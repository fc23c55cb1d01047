import type { AdaptResult, Learner, OptimizerState } from '../learners/learner.js';
import type { AsyncCounters, AsyncProgress, AsyncSpanRequest, AsyncSpanResult } from './executor.js';

/** What one task sent out returns: its adapted weights and, under `shared`, its final optimizer state. */
export interface TaskAnswer {
  readonly result: AdaptResult;
  readonly state: OptimizerState | undefined;
}

/**
 * Sends task `task` (its number in the run: task `task % metaBatch` of meta-iteration
 * `⌊task / metaBatch⌋`) from the learner's current φ and state, and resolves with its answer.
 */
export type SendTask = (request: AsyncSpanRequest, task: number) => Promise<TaskAnswer>;

/** A task sent out and not yet applied. */
interface Flight {
  /** Updates applied to φ when the task was sent (φ's version). */
  readonly version: number;
  /** The step count of the optimizer state it was sent with. */
  readonly step: number;
}

/** An answer that has arrived and waits for a span to apply it. */
interface Arrival {
  readonly generation: number;
  readonly task: number;
  readonly answer?: TaskAnswer;
  readonly error?: unknown;
}

/**
 * The asynchronous mode's bookkeeping, shared by every parallel executor: it keeps `window`
 * tasks out at once, each sent from the φ of its moment, and applies their answers as they
 * arrive, φ moving by ε/metaBatch toward each adapted W. An answer computed from a φ more than
 * `maxStaleness` updates old is dropped and its task sent again from the current φ. Each task
 * number is applied once: an answer for a task that is not out (a duplicate) is counted and
 * ignored. Answers are applied only inside {@link runSpan}, so φ does not move while the loop
 * saves a checkpoint; the {@link AsyncProgress} of a span's end is what a resumed run owes.
 */
export class AsyncDriver {
  private readonly send: SendTask;
  private readonly maxStaleness: number | undefined;
  private readonly windowSize: number | undefined;
  /** Bumped by every fresh start: answers of an earlier generation are ignored. */
  private generation = 0;
  private learner: Learner | undefined;
  private version = 0;
  private next = 0;
  /** Tasks to send again (dropped as stale, or owed by the checkpoint a run resumed from), lowest first. */
  private owed: number[] = [];
  private readonly flights = new Map<number, Flight>();
  private readonly arrivals: Arrival[] = [];
  private wake: (() => void) | undefined;
  private readonly counters = { sent: 0, applied: 0, stale: 0, duplicates: 0 };

  constructor(send: SendTask, options: { maxStaleness?: number; window?: number } = {}) {
    this.send = send;
    this.maxStaleness = options.maxStaleness;
    this.windowSize = options.window;
  }

  /** The counters of this executor's asynchronous runs so far. */
  get totals(): AsyncCounters {
    return { ...this.counters };
  }

  /**
   * Applies `metaBatch` answers to the learner's φ (meta-iteration `iteration` of the schedule),
   * sending tasks so that `window` stay out, and returns what it applied and what is still owed.
   */
  async runSpan(request: AsyncSpanRequest): Promise<AsyncSpanResult> {
    const { metaBatch } = request;
    if (request.resume !== undefined || this.learner !== request.learner) this.start(request);
    const window = this.windowSize ?? metaBatch;
    const maxStaleness = this.maxStaleness ?? 2 * metaBatch;
    const tasks: number[] = [];
    const staleness: number[] = [];
    const losses: number[] = [];
    let dropped = 0;
    let steps = 0;
    while (tasks.length < metaBatch) {
      this.fill(request, window);
      const arrival = await this.take();
      if (arrival.generation !== this.generation) continue;
      const flight = this.flights.get(arrival.task);
      if (flight === undefined) {
        this.counters.duplicates++;
        continue;
      }
      if (arrival.error !== undefined) throw arrival.error;
      this.flights.delete(arrival.task);
      const age = this.version - flight.version;
      if (age > maxStaleness) {
        this.counters.stale++;
        dropped++;
        this.owe(arrival.task);
        continue;
      }
      const { result, state } = arrival.answer!;
      const problem = request.apply(result);
      if (problem !== undefined) return { tasks, staleness, losses, dropped, progress: this.progress(), problem };
      if (state !== undefined) {
        blendState(request.learner, state, 1 / metaBatch, flight.step);
        steps = state.step - flight.step;
      }
      this.version++;
      this.counters.applied++;
      tasks.push(arrival.task);
      staleness.push(age);
      losses.push(result.loss);
    }
    // Under `shared` the state's step count advances once a meta-iteration, as in the synchronous mode.
    const state = request.learner.getOptimizerState();
    if (state !== undefined && steps > 0) request.learner.setOptimizerState({ ...state, step: state.step + steps });
    // The tasks of later meta-iterations are sent now, so workers stay busy while the loop saves.
    this.fill(request, window);
    return { tasks, staleness, losses, dropped, progress: this.progress() };
  }

  private start(request: AsyncSpanRequest): void {
    this.generation++;
    this.learner = request.learner;
    this.flights.clear();
    this.arrivals.length = 0;
    this.version = request.iteration * request.metaBatch;
    this.next = request.resume?.next ?? request.iteration * request.metaBatch;
    this.owed = [...(request.resume?.owed ?? [])].sort((a, b) => a - b);
  }

  private progress(): AsyncProgress {
    return { next: this.next, owed: [...this.owed, ...this.flights.keys()].sort((a, b) => a - b) };
  }

  private owe(task: number): void {
    let i = this.owed.length;
    while (i > 0 && this.owed[i - 1]! > task) i--;
    this.owed.splice(i, 0, task);
  }

  private fill(request: AsyncSpanRequest, window: number): void {
    while (this.flights.size < window) {
      let task: number;
      if (this.owed.length > 0) task = this.owed.shift()!;
      else if (this.next < request.totalTasks) task = this.next++;
      else return;
      const state = request.learner.getOptimizerState();
      this.flights.set(task, { version: this.version, step: state?.step ?? 0 });
      this.counters.sent++;
      const generation = this.generation;
      this.send(request, task).then(
        (answer) => this.arrive({ generation, task, answer }),
        (error: unknown) => this.arrive({ generation, task, error }),
      );
    }
  }

  private arrive(arrival: Arrival): void {
    this.arrivals.push(arrival);
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private async take(): Promise<Arrival> {
    while (this.arrivals.length === 0) await new Promise<void>((resolve) => (this.wake = resolve));
    return this.arrivals.shift()!;
  }
}

/**
 * The asynchronous `shared` state: the optimizer's moments move by `weight` toward those of the
 * task just applied (the running counterpart of the synchronous mode's mean over a meta-batch);
 * its step count is left to the span's end.
 */
function blendState(learner: Learner, arrived: OptimizerState, weight: number, baseStep: number): void {
  const current = learner.getOptimizerState();
  if (current === undefined) {
    learner.setOptimizerState({ ...arrived, step: baseStep });
    return;
  }
  const lerp = (a: Float32Array | undefined, b: Float32Array | undefined): Float32Array | undefined => {
    if (a === undefined || b === undefined) return b ?? a;
    const out = new Float32Array(a.length);
    for (let i = 0; i < a.length; i++) out[i] = a[i]! + weight * (b[i]! - a[i]!);
    return out;
  };
  const m = lerp(current.m, arrived.m);
  const v = lerp(current.v, arrived.v);
  learner.setOptimizerState({ kind: current.kind, step: current.step, ...(m ? { m } : {}), ...(v ? { v } : {}) });
}
