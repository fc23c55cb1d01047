/**
 * The seed's example (784-10-10, Reptile over Adam at 0.01, batch 32, 60,000 MNIST images) trained
 * with `fit` on the native engine (one and two threads) and with tfjs's `model.fit` on the wasm
 * backend, in one sitting, from the same initial weights and the same seeded order of examples.
 * Prints training seconds (the epochs alone, without the per-epoch test evaluation) and the test
 * accuracy of each run.
 *
 *   npx tsx bench/fit-mnist.ts [--epochs 2] [--seeds 0,1,2] [--runs native1,native2,wasm]
 */
import { loadMnist } from '../src/data/mnist.js';
import { selectBackend } from '../src/engine/backend.js';
import { Reptile } from '../src/optim/reptile.js';
import { trainMnistMlp } from '../src/recipes/mnist-mlp.js';

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : dflt;
};
const epochs = Number(arg('epochs', '2'));
const seeds = arg('seeds', '0').split(',').map(Number);
const runs = arg('runs', 'native1,native2,wasm').split(',');

await selectBackend('wasm');
const data = await loadMnist();
const rows: Record<string, unknown>[] = [];
for (const seed of seeds) {
  for (const run of runs) {
    if (run.startsWith('native')) process.env.REPTILE_NATIVE_THREADS = run.slice(6);
    const r = await trainMnistMlp({
      data,
      optimizer: new Reptile({ learningRate: 0.01 }),
      epochs,
      seed,
      engine: run === 'wasm' ? 'tfjs' : 'native',
    });
    const train = r.history.reduce((s, h) => s + h.seconds, 0);
    const row = { run, seed, engine: r.engine, epochs: r.epochs, trainSeconds: Number(train.toFixed(3)), perEpoch: r.history.map((h) => Number(h.seconds.toFixed(3))), testAccuracy: r.testAccuracy, seconds: Number(r.seconds.toFixed(2)) };
    rows.push(row);
    console.log(JSON.stringify(row));
  }
}
