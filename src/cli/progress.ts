import cliProgress from 'cli-progress';
import type { MetaCallbacks, MetaIterLogs } from '../train/meta-train.js';

/**
 * Progress of a meta-training run on stderr: a live bar on a terminal, plain lines otherwise
 * (about twenty per run, and one at least every `everySeconds` so that a long run is never
 * silent), so that logs captured to a file stay readable.
 */
export function progressCallbacks(label: string, stream: NodeJS.WriteStream = process.stderr, everySeconds = 10): MetaCallbacks {
  let bar: cliProgress.SingleBar | undefined;
  let total = 0;
  let lossAvg = Number.NaN;
  let lastLine = 0;
  let lastLineAt = performance.now();
  const began = performance.now();
  return {
    onTrainBegin: ({ startIteration, config }) => {
      total = config.metaIters;
      if (stream.isTTY) {
        bar = new cliProgress.SingleBar(
          { stream, format: `${label} [{bar}] {value}/{total} | loss {loss} | ε {eps} | {rate} it/s | eta {eta_formatted}`, hideCursor: true, etaBuffer: 200 },
          cliProgress.Presets.shades_classic,
        );
        bar.start(total, startIteration, { loss: '-', eps: '-', rate: '-' });
      } else if (startIteration > 0) {
        stream.write(`${label}: resuming at meta-iteration ${startIteration}/${total}\n`);
      }
    },
    onMetaIterEnd: (iteration: number, logs: MetaIterLogs) => {
      lossAvg = Number.isNaN(lossAvg) ? logs.loss : 0.98 * lossAvg + 0.02 * logs.loss;
      const done = iteration + 1;
      const rate = done / ((performance.now() - began) / 1000);
      if (bar) {
        bar.update(done, { loss: lossAvg.toPrecision(4), eps: logs.epsilon.toFixed(4), rate: rate.toFixed(1) });
      } else if (done === total || done - lastLine >= Math.max(1, Math.floor(total / 20)) || performance.now() - lastLineAt >= everySeconds * 1000) {
        lastLine = done;
        lastLineAt = performance.now();
        stream.write(`${label}: ${done}/${total} loss ${lossAvg.toPrecision(4)} ε ${logs.epsilon.toFixed(4)}\n`);
      }
    },
    onTrainEnd: () => {
      bar?.stop();
    },
  };
}
