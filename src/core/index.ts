export * from './params.js';
export * from './rng.js';
export * from './schedule.js';
export * from './meta-update.js';
export * from './batches.js';
export * from './codec.js';
