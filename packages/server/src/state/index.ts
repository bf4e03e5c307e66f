/** The pure state layer: reducer, ETA estimator, kind history, stage weighting and batch roll-up. */
export * from './estimator.js';
export * from './eta.js';
export * from './eta-model.js';
export * from './eta-rate.js';
export * from './history.js';
export * from './prepare.js';
export * from './rate.js';
export * from './reducer.js';
export * from './rollup.js';
export * from './stages.js';
export * from './stall.js';
