/** The pure state layer: reducer, ETA estimator, stage weighting and batch roll-up. */
export * from './eta.js';
export * from './hidden-estimator.js';
export * from './prepare.js';
export * from './reducer.js';
export * from './rollup.js';
export * from './stages.js';
