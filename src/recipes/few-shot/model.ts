import * as tf from '@tensorflow/tfjs';
import { DEFAULT_CONV_INIT, createMiniImageNetModel, createOmniglotModel, type ConvInit } from '../../learners/models.js';

/** The paper's two few-shot networks. */
export type FewShotModelKind = 'omniglot' | 'miniimagenet';

/** The network suited to a dataset: Mini-ImageNet's for large colour images, Omniglot's otherwise. */
export function modelKindFor(inputShape: readonly number[]): FewShotModelKind {
  return (inputShape[0] ?? 0) > 32 ? 'miniimagenet' : 'omniglot';
}

/** Builds the paper's network of `kind` for `inputShape` and `classes` outputs. */
export function createFewShotModel(options: { kind: FewShotModelKind; inputShape: readonly number[]; classes: number; seed: number; init?: ConvInit }): tf.Sequential {
  const [size, , channels] = options.inputShape;
  const common = { classes: options.classes, seed: options.seed, size: size ?? 28, channels: channels ?? 1, init: options.init ?? DEFAULT_CONV_INIT };
  return options.kind === 'miniimagenet' ? createMiniImageNetModel(common) : createOmniglotModel(common);
}
