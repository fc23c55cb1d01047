import type * as tf from '@tensorflow/tfjs';
import { Params } from '../../core/params.js';
import { describeValue } from '../../_utils/checks.js';
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
  const problem = fewShotMetaProblem(meta);
  if (problem !== undefined) throw new CheckpointError(`checkpoint in '${dir}' describes its network badly (${problem}): the checkpoint is damaged or from another version`);
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

/** Largest input height or width a few-shot checkpoint may name (its network is built from it). */
export const MAX_FEW_SHOT_SIDE = 512;
/** Most classes per task a few-shot checkpoint may name. */
export const MAX_FEW_SHOT_CLASSES = 1000;

// The fields the network is rebuilt from, checked before anything is built from them.
function fewShotMetaProblem(meta: Record<string, unknown>): string | undefined {
  const whole = (v: unknown, most: number): boolean => Number.isSafeInteger(v) && (v as number) >= 1 && (v as number) <= most;
  const settings = meta['fewShot'] as Partial<FewShotCheckpointInfo['settings']> | null;
  const config = meta['config'] as Partial<MetaConfig> | null;
  const shape = meta['inputShape'];
  if (meta['modelKind'] !== 'omniglot' && meta['modelKind'] !== 'miniimagenet') return `unknown network ${describeValue(meta['modelKind'])}`;
  if (!Array.isArray(shape) || shape.length !== 3 || !whole(shape[0], MAX_FEW_SHOT_SIDE) || !whole(shape[1], MAX_FEW_SHOT_SIDE) || !whole(shape[2], 4)) {
    return `input shape ${Array.isArray(shape) ? `[${shape.map(describeValue).join(', ')}]` : describeValue(shape)} is not [height, width, channels] with sides up to ${MAX_FEW_SHOT_SIDE} and up to 4 channels`;
  }
  if (typeof settings !== 'object' || settings === null || !whole(settings.classes, MAX_FEW_SHOT_CLASSES)) return `classes per task not a whole number from 1 to ${MAX_FEW_SHOT_CLASSES}`;
  if (settings.init !== undefined && settings.init !== 'fan-in' && settings.init !== 'glorot') return `unknown initialisation ${describeValue(settings.init)}`;
  if (typeof config !== 'object' || config === null || !Number.isInteger(config.seed) || config.seed! < 0 || config.seed! > 0xffffffff) return 'no 32-bit seed';
  if (config.innerState !== undefined && config.innerState !== 'carry' && config.innerState !== 'shared' && config.innerState !== 'reset') return `unknown inner-state policy ${describeValue(config.innerState)}`;
  return undefined;
}
