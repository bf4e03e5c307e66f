import type { JobState } from '@headway/client';
import type { CSSProperties } from 'react';
import { describeJob, formatPercent, formatStage, formatTimeLeft } from './format.js';

export interface ProgressBarProps {
  /** The job's state (from `useJob`, `useJobs` or a handle); null or undefined while loading. */
  job: JobState | null | undefined;
  /** Accessible name; default the job's name. */
  label?: string;
  /** Show stage, percent, time left and status under the bar (default true). */
  details?: boolean;
  className?: string;
  style?: CSSProperties;
}

/** Fill colours by status; each can be themed with `--hw-progress-<status>`. */
const FILL: Record<string, string> = {
  queued: '#9ca3af',
  running: '#2563eb',
  paused: '#d97706',
  completed: '#16a34a',
  failed: '#dc2626',
  cancelled: '#6b7280',
};

/**
 * An accessible progress bar for a job: `role="progressbar"` with
 * `aria-valuenow` (absent while the percent is unknown) and an
 * `aria-valuetext` that reads stage, percent, time left and status. Time left
 * is the hub's interval (`about 2–4 min left`); a stalled job says so instead,
 * in `--hw-progress-stall` (`data-stalled` on the root). The status
 * is always written out, so colour is never the only signal.
 *
 * Themable with CSS variables (no stylesheet needed): `--hw-progress-height`,
 * `--hw-progress-radius`, `--hw-progress-track`, `--hw-progress-fill` (all
 * statuses) or `--hw-progress-<status>` (one), `--hw-progress-text`,
 * `--hw-progress-font-size`, `--hw-progress-gap`, `--hw-progress-transition`.
 * Class names (`hw-progress`, `hw-progress__fill`, …) and `data-status` allow
 * plain CSS too.
 */
export function ProgressBar({ job, label, details = true, className, style }: ProgressBarProps) {
  const status = job?.status ?? 'loading';
  const known = job && (job.status !== 'queued' || job.progress.percent > 0);
  const percent = job
    ? Math.max(0, Math.min(100, job.status === 'completed' ? 100 : job.progress.percent))
    : 0;
  const eta = job ? formatTimeLeft(job) : '';
  const stalled = Boolean(job?.stalled);
  return (
    <div
      role="progressbar"
      aria-label={label ?? job?.name ?? 'Job progress'}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={known ? Math.floor(percent) : undefined}
      aria-valuetext={describeJob(job)}
      aria-busy={status === 'running' || status === 'queued' || status === 'loading'}
      className={className ? `hw-progress ${className}` : 'hw-progress'}
      data-status={status}
      data-stalled={stalled || undefined}
      style={{ display: 'grid', gap: 'var(--hw-progress-gap, 4px)', ...style }}
    >
      <div
        className="hw-progress__track"
        style={{
          height: 'var(--hw-progress-height, 8px)',
          borderRadius: 'var(--hw-progress-radius, 999px)',
          background: 'var(--hw-progress-track, #e5e7eb)',
          overflow: 'hidden',
        }}
      >
        <div
          className="hw-progress__fill"
          style={{
            width: `${percent}%`,
            height: '100%',
            background: `var(--hw-progress-${status}, var(--hw-progress-fill, ${FILL[status] ?? FILL.queued}))`,
            transition: 'var(--hw-progress-transition, width 0.3s ease)',
          }}
        />
      </div>
      {details && (
        <div
          className="hw-progress__details"
          style={{
            display: 'flex',
            flexWrap: 'wrap',
            gap: '0 1em',
            color: 'var(--hw-progress-text, inherit)',
            fontSize: 'var(--hw-progress-font-size, 0.875em)',
          }}
        >
          {job && formatStage(job) && <span className="hw-progress__stage">{formatStage(job)}</span>}
          <span className="hw-progress__percent">{job ? formatPercent(job) : '…'}</span>
          {eta && (
            <span
              className={stalled ? 'hw-progress__eta hw-progress__stall' : 'hw-progress__eta'}
              style={stalled ? { color: 'var(--hw-progress-stall, #b45309)', fontWeight: 600 } : undefined}
            >
              {eta}
            </span>
          )}
          <span className="hw-progress__status">{status}</span>
        </div>
      )}
    </div>
  );
}
