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

/** Seconds in the largest unit that keeps the number readable: minutes below 2 h, hours below 2 days. */
function unitOf(seconds: number): { size: number; name: string } {
  if (seconds < 7200) return { size: 60, name: 'min' };
  if (seconds < 172_800) return { size: 3600, name: 'h' };
  return { size: 86_400, name: 'days' };
}

/**
 * Time left as the interval the hub believes in: `about 2–4 min left`,
 * `about 40 min – 3 h left`, `under 2 min left`; a single figure (`formatEta`)
 * when the estimate has no interval or a narrow one.
 */
export function formatEtaRange(
  eta: { seconds: number; low?: number; high?: number },
  options: FormatEtaOptions = {},
): string {
  const { low, high } = eta;
  if (low === undefined || high === undefined || !(high >= low) || high < 60)
    return formatEta(eta.seconds, options);
  const left = options.left === false ? '' : ' left';
  const hu = unitOf(high);
  const hi = Math.max(1, Math.ceil(high / hu.size));
  const lu = unitOf(low);
  const lo = Math.floor(low / lu.size);
  if (lo === 0) return `under ${hi} ${hu.name}${left}`;
  if (lu.name !== hu.name) return `about ${lo} ${lu.name} – ${hi} ${hu.name}${left}`;
  return lo === hi ? `about ${hi} ${hu.name}${left}` : `about ${lo}–${hi} ${hu.name}${left}`;
}

/** A stall in words, `stalled: no report for 3 min`; empty when the job is not stalled. */
export function formatStall(job: JobState, now: number = Date.now()): string {
  if (!job.stalled) return '';
  const quiet = Math.max(0, (now - Date.parse(job.stalled.since)) / 1000);
  return quiet < 60
    ? 'stalled: no report for under a minute'
    : `stalled: no report for ${Math.round(quiet / 60)} min`;
}

/**
 * What to show for time left: the stall when stalled, else the interval while
 * the job is queued (a job of a known kind has an estimate before it starts),
 * running or paused (a paused job's estimate stands still); empty otherwise.
 */
export function formatTimeLeft(job: JobState, now?: number, options: FormatEtaOptions = {}): string {
  if (job.stalled) return formatStall(job, now);
  if (!job.eta || !['queued', 'running', 'paused'].includes(job.status)) return '';
  const text = formatEtaRange(job.eta, options);
  return job.status === 'paused' ? `${text} once resumed` : text;
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
 * time left (or the stall) and status, e.g. `transcode (2 of 4), 42%, about 2–4 min left, running`.
 */
export function describeJob(job: JobState | null | undefined): string {
  if (!job) return 'loading';
  const parts = [formatStage(job), formatPercent(job)];
  parts.push(formatTimeLeft(job));
  parts.push(job.status === 'failed' && job.error ? `failed: ${job.error.message}` : job.status);
  return parts.filter(Boolean).join(', ');
}
