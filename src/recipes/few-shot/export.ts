import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { writeFileAtomicSync } from '../../_utils/atomic-write.js';
import { ReptileError } from '../../_utils/errors.js';
import { makeDirectory } from '../../_utils/make-dir.js';

/**
 * Writes `model` as a TensorFlow.js LayersModel — `model.json` (topology and weights manifest)
 * and `weights.bin` — into `outDir`, which `tf.loadLayersModel` loads. The batch-norm layers
 * must be applied in training mode (`model.apply(x, { training: true })`) to reproduce the
 * paper's batch-statistics behaviour; their moving averages are never trained.
 */
export async function exportLayersModel(model: tf.LayersModel, outDir: string): Promise<string[]> {
  try {
    makeDirectory(outDir);
  } catch (e) {
    throw new ReptileError(`cannot create the export directory '${outDir}' (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): choose a writable \`outDir\``);
  }
  const files = [path.join(outDir, 'model.json'), path.join(outDir, 'weights.bin')];
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weightData = artifacts.weightData;
      const bytes = weightData === undefined ? new Uint8Array(0) : new Uint8Array(Array.isArray(weightData) ? tf.io.concatenateArrayBuffers(weightData) : weightData);
      const json = {
        modelTopology: artifacts.modelTopology,
        format: 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: null,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs ?? [] }],
      };
      // Weights first, then model.json: a reader never sees a manifest without its weights.
      writeAtomic(files[1]!, bytes);
      writeAtomic(files[0]!, Buffer.from(JSON.stringify(json)));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: bytes.byteLength } };
    }),
  );
  return files;
}

function writeAtomic(file: string, bytes: Uint8Array): void {
  try {
    writeFileAtomicSync(file, bytes);
  } catch (e) {
    throw new ReptileError(`cannot write '${file}' (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): choose a writable \`outDir\``);
  }
}
