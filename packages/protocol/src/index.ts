export * from './backoff.js';
export * from './codes.js';
export * from './schemas.js';
export * from './types.js';
