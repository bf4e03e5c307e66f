export * from './codes.js';
export * from './schemas.js';
export * from './types.js';
