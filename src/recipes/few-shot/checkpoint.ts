import type * as tf from '@tensorflow/tfjs';
import { Params } from '../../core/params.js';
import { CheckpointError } from '../../_utils/errors.js';
import { createLearner, type LearnerChoice } from '../../learners/create-learner.js';
import { TfjsLearner } from '../../learners/tfjs.js';
import type { Learner } from '../../learners/learner.js';
import { readCheckpoint } from '../../train/checkpoint.js';
import type { MetaConfig } from '../../train/config.js';
import { createFewShotModel, type FewShotModelKind } from './model.js';
import type { FewShotSettings } from './settings.js';

/** What a few-shot checkpoint records about its run (see `fewShotTrain`). */
export interface FewShotCheckpointInfo {
  settings: FewShotSettings & { trainShots: number };
  data: Record<string, unknown> & { dataset: string; dataDir: string };
  kind: FewShotModelKind;
  inputShape: number[];
  config: MetaConfig;
}

/**
 * Reads a few-shot checkpoint's description and rebuilds its learner with φ and the inner
 * optimizer's state; φ is also written into the returned tfjs model (for export).
 */
export function loadFewShotCheckpoint(
  dir: string,
  options: { learner?: LearnerChoice; log?: (line: string) => void } = {},
): { info: FewShotCheckpointInfo; learner: Learner; model: tf.LayersModel; iteration: number } {
  const ckpt = readCheckpoint(dir);
  const meta = ckpt.meta;
  if (meta['fewShot'] === undefined || meta['data'] === undefined || meta['modelKind'] === undefined) {
    throw new CheckpointError(`checkpoint in '${dir}' is not from a few-shot run ('reptile train --dataset ...'): pass the \`checkpoint\` folder of a few-shot training run`);
  }
  const info: FewShotCheckpointInfo = {
    settings: meta['fewShot'] as FewShotCheckpointInfo['settings'],
    data: meta['data'] as FewShotCheckpointInfo['data'],
    kind: meta['modelKind'] as FewShotModelKind,
    inputShape: meta['inputShape'] as number[],
    config: meta['config'] as MetaConfig,
  };
  const model = createFewShotModel({ kind: info.kind, inputShape: info.inputShape, classes: info.settings.classes, seed: info.config.seed, ...(info.settings.init !== undefined ? { init: info.settings.init } : {}) });
  const learner = createLearner({ model, learner: options.learner ?? 'auto', innerState: info.config.innerState, ...(options.log ? { log: options.log } : {}) });
  if (ckpt.params.layout.hash !== learner.layout.hash) {
    throw new CheckpointError(`checkpoint in '${dir}' does not fit the ${info.kind} network it names (layout ${ckpt.params.layout.hash} vs ${learner.layout.hash}): the checkpoint is damaged or from another version`);
  }
  const params = new Params(learner.layout, ckpt.params.data);
  learner.setParams(params);
  learner.setOptimizerState(ckpt.optimizer);
  // The tfjs model holds φ too, whichever engine runs the inner loops, so that export sees it.
  new TfjsLearner({ model }).setParams(params);
  return { info, learner, model, iteration: ckpt.iteration };
}
