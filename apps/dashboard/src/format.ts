/**
 * Formatting for the dashboard, next to `formatEta` & co. from `@headway/react`:
 * byte sizes, rates in the job's unit, durations and relative times.
 */
import type { JobState } from '@headway/client';

/** Binary units, named as such: 104,857,600 bytes are `100 MiB` (and would be 105 MB). */
const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** `512 B`, `48 MiB`, `1.25 GiB` (powers of 1024). */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '';
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  const digits = unit === 0 || value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${BYTE_UNITS[unit]}`;
}

const COMPACT = new Intl.NumberFormat('en', { notation: 'compact', maximumFractionDigits: 1 });

/** A number with at most three significant digits: `1.25`, `12.5`, `125`, `1,250`. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return '';
  const abs = Math.abs(value);
  if (abs >= 10_000) return COMPACT.format(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
  return Number(value.toFixed(digits)).toLocaleString('en');
}

/** Per second when at least one a second, else per minute, else per hour: `250 frames/s`, `3.2 videos/min`. */
export function formatUnitRate(perSecond: number, unit: string): string {
  if (!Number.isFinite(perSecond) || perSecond <= 0) return '';
  if (perSecond >= 1) return `${formatNumber(perSecond)} ${unit}/s`;
  if (perSecond * 60 >= 1) return `${formatNumber(perSecond * 60)} ${unit}/min`;
  return `${formatNumber(perSecond * 3600)} ${unit}/h`;
}

/**
 * The job's current rate in its own unit: `48 MB/s` for bytes, `250 frames/s`,
 * `3.2 items/min` for a batch (finished children per minute), `1.5 %/s` when
 * the worker reports only percentages. Empty when unknown.
 */
export function formatRate(job: JobState): string {
  const eta = job.eta;
  if (!eta || job.status !== 'running' || !(eta.rate > 0)) return '';
  if (eta.unit === 'bytes') return `${formatBytes(eta.rate)}/s`;
  if (eta.unit === 'percent') {
    // A batch's percent is the mean of its children's: its rate in children per second.
    if (job.children && job.children.total > 0) {
      return formatUnitRate((eta.rate / 100) * job.children.total, 'items');
    }
    return `${formatNumber(eta.rate)} %/s`;
  }
  return formatUnitRate(eta.rate, eta.unit);
}

/** `850 ms`, `12 s`, `3 min 5 s`, `1 h 2 min`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return seconds % 60 ? `${minutes} min ${seconds % 60} s` : `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  return minutes % 60 ? `${hours} h ${minutes % 60} min` : `${hours} h`;
}

/**
 * Every time of day on the page is written by these formatters, in the
 * browser's locale and its one hour cycle (12- or 24-hour), never a mix.
 */
const TIME = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit', second: '2-digit' });
const CLOCK = new Intl.DateTimeFormat(undefined, {
  hour: 'numeric',
  minute: '2-digit',
  second: '2-digit',
  fractionalSecondDigits: 3,
});
const DATE = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
const DATE_TIME = new Intl.DateTimeFormat(undefined, {
  dateStyle: 'medium',
  timeStyle: 'medium',
  hourCycle: TIME.resolvedOptions().hourCycle,
});

/** `just now`, `5 s ago`, `3 min ago`, `2 h ago`, else the date. */
export function formatAgo(iso: string | null | undefined, now: number): string {
  if (!iso) return '';
  const at = Date.parse(iso);
  if (!Number.isFinite(at)) return '';
  const seconds = Math.max(0, Math.round((now - at) / 1000));
  if (seconds < 2) return 'just now';
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`;
  return DATE.format(at);
}

/** Local time with milliseconds, for the event log: `14:03:07.215` (or `2:03:07.215 PM`). */
export function formatClock(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : CLOCK.format(d);
}

/** Local time to the second: `14:03:07` (or `2:03:07 PM`). */
export function formatTime(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : TIME.format(d);
}

/** Local date and time, to the second, in the same hour cycle as `formatTime`. */
export function formatDateTime(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : DATE_TIME.format(d);
}

/** Jobs that have not finished. */
export const ACTIVE_STATUSES: ReadonlySet<string> = new Set(['queued', 'running', 'paused']);

export function isActive(job: JobState): boolean {
  return ACTIVE_STATUSES.has(job.status);
}
