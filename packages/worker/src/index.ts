/**
 * @headway/worker: report the progress of long-running jobs to a Headway hub,
 * and honour cancel and pause requests. The BullMQ bridge is in
 * `@headway/worker/bullmq`.
 */
export type { HeadwayWorkerErrorCode } from './errors.js';
export { HeadwayWorkerError, isAbortError, JobAbortedError, WorkerErrorCode } from './errors.js';
export type { ChildInput, ControlListener, FailOptions, ProgressReport } from './job-handle.js';
export { JobHandle } from './job-handle.js';
export type {
  ControlMode,
  HeadwayWorkerOptions,
  HeadwayWorkerOptionsInput,
  RetryInfo,
  RetryOptions,
} from './options.js';
export { retryDefaults, workerDefaults } from './options.js';
export type { OutputParserOptions, ParsedLine } from './output-parser.js';
export { DEFAULT_STAGE_MARKER, OutputParser } from './output-parser.js';
export type { RunCommandOptions, RunCommandResult } from './run.js';
export { runCommand, runDefaults } from './run.js';
export type { CreateJobOptions } from './worker.js';
export { HeadwayWorker } from './worker.js';
