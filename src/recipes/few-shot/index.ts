// The few-shot recipe, one job per file: the network, the run's settings, training, reading a
// checkpoint back, evaluation, and export as a TF.js LayersModel.
export * from './model.js';
export * from './settings.js';
export * from './train.js';
export * from './checkpoint.js';
export * from './evaluate.js';
export * from './export.js';
