import * as tf from '@tensorflow/tfjs';
import { DEFAULT_CONV_INIT, createMiniImageNetModel, createOmniglotModel, type ConvInit } from '../../learners/models.js';
import { createResNet12 } from '../../learners/resnet12.js';

/** The few-shot networks: the paper's two, and ResNet-12 (MetaOptNet's, widths 64-160-320-640). */
export type FewShotModelKind = 'omniglot' | 'miniimagenet' | 'resnet12';

/** The network suited to a dataset: Mini-ImageNet's for large colour images, Omniglot's otherwise. */
export function modelKindFor(inputShape: readonly number[]): FewShotModelKind {
  return (inputShape[0] ?? 0) > 32 ? 'miniimagenet' : 'omniglot';
}

/** Builds the network of `kind` for `inputShape` and `classes` outputs. */
export function createFewShotModel(options: { kind: FewShotModelKind; inputShape: readonly number[]; classes: number; seed: number; init?: ConvInit }): tf.LayersModel {
  const [size, , channels] = options.inputShape;
  const common = { classes: options.classes, seed: options.seed, size: size ?? 28, channels: channels ?? 1, init: options.init ?? DEFAULT_CONV_INIT };
  if (options.kind === 'resnet12') return createResNet12(common);
  return options.kind === 'miniimagenet' ? createMiniImageNetModel(common) : createOmniglotModel(common);
}
