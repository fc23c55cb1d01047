export * from './task.js';
export * from './sine.js';
