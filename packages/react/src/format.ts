import type { JobState } from '@headway/client';

const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'}`;

export interface FormatEtaOptions {
  /**
   * End with ` left` (default true). Pass false where a label already says
   * "Time left", so that the value reads `about 3 minutes`, not `… left` twice.
   */
  left?: boolean;
}

/**
 * Time left in words: `a few seconds left`, `less than a minute left`,
 * `about 3 minutes left`, `about 1 hour 20 minutes left`, `about 2 days left`.
 */
export function formatEta(seconds: number, options: FormatEtaOptions = {}): string {
  const words = etaWords(seconds);
  return words && options.left !== false ? `${words} left` : words;
}

function etaWords(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '';
  if (seconds < 10) return 'a few seconds';
  if (seconds < 60) return 'less than a minute';
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `about ${plural(minutes, 'minute')}`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) {
    // Minutes to the nearest five: an estimate does not deserve more.
    const rest = Math.round((minutes % 60) / 5) * 5;
    return rest === 0 || rest === 60
      ? `about ${plural(hours + (rest === 60 ? 1 : 0), 'hour')}`
      : `about ${plural(hours, 'hour')} ${plural(rest, 'minute')}`;
  }
  return `about ${plural(Math.round(hours / 24), 'day')}`;
}

/** The stage in words: `transcode (2 of 4)`, or just the name without a plan. */
export function formatStage(job: JobState): string {
  const stage = job.stage;
  if (!stage) return '';
  return stage.count > 1 ? `${stage.name} (${stage.index + 1} of ${stage.count})` : stage.name;
}

/** Whole percent, floored so that 100% means done. */
export function formatPercent(job: JobState): string {
  return `${Math.floor(job.status === 'completed' ? 100 : job.progress.percent)}%`;
}

/**
 * The job's progress as one sentence for assistive technology: stage, percent,
 * time left and status, e.g. `transcode (2 of 4), 42%, about 3 minutes left, running`.
 */
export function describeJob(job: JobState | null | undefined): string {
  if (!job) return 'loading';
  const parts = [formatStage(job), formatPercent(job)];
  if (job.eta && job.status === 'running') parts.push(formatEta(job.eta.seconds));
  parts.push(job.status === 'failed' && job.error ? `failed: ${job.error.message}` : job.status);
  return parts.filter(Boolean).join(', ');
}
