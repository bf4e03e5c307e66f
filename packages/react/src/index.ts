/**
 * @headway/react: hooks and components for live job progress, on top of
 * `@headway/client`. Updates are applied once per animation frame; rendering
 * on the server and under StrictMode is safe.
 */
export {
  describeJob,
  type FormatEtaOptions,
  formatEta,
  formatEtaRange,
  formatPercent,
  formatStage,
  formatStall,
  formatTimeLeft,
} from './format.js';
export {
  type ConnectionSnapshot,
  HeadwayProvider,
  type HeadwayProviderProps,
  type JobSnapshot,
  type JobsSnapshot,
  ReactErrorCode,
  type UseJobsOptions,
  useClient,
  useConnection,
  useJob,
  useJobs,
} from './hooks.js';
export { JobList, type JobListProps } from './job-list.js';
export { ProgressBar, type ProgressBarProps } from './progress-bar.js';
