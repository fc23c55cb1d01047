export * from './task.js';
export * from './sine.js';
export * from './labeled.js';
