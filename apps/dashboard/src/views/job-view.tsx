/**
 * One job: its state and progress, the stage timeline with each stage's
 * duration, the event log (history, live on top), metadata, result and error,
 * and Cancel / Pause / Resume behind a confirmation, with the hub's
 * acknowledgement shown and then what the worker did about it.
 */
import type { JobEvent } from '@headway/client';
import { formatPercent, formatTimeLeft, ProgressBar, useJob, useJobs } from '@headway/react';
import { memo, useEffect, useState } from 'react';
import { Controls } from '../components/job-controls.js';
import { StageTimeline } from '../components/stage-timeline.js';
import { StatusBadge } from '../components/status-badge.js';
import {
  formatAgo,
  formatBytes,
  formatClock,
  formatDateTime,
  formatDuration,
  formatNumber,
  formatRate,
  isActive,
} from '../format.js';
import { useNow } from '../now.js';
import { jobPath, Link } from '../router.js';
import { PAGE_SIZE, useEventLog } from '../use-event-log.js';

/** What an estimate rests on, in words. */
const BASIS_TEXT: Record<string, string> = {
  history: 'from earlier jobs of this kind',
  rate: 'from its pace so far',
  both: 'from earlier jobs and its pace',
  none: 'no basis yet',
};

// ---------------------------------------------------------------------------
// Event log

/** One event's data in a line. */
export function describeEvent(e: JobEvent): string {
  const d = e.data as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === 'string' ? v : '');
  switch (e.kind) {
    case 'progress': {
      const parts: string[] = [];
      if (typeof d.percent === 'number') parts.push(`${formatNumber(d.percent)}%`);
      if (typeof d.current === 'number') {
        const bytes = d.unit === 'bytes';
        const fmt = (n: number) => (bytes ? formatBytes(n) : formatNumber(n));
        const total = typeof d.total === 'number' ? ` of ${fmt(d.total)}` : '';
        parts.push(`${fmt(d.current)}${total}${!bytes && d.unit ? ` ${str(d.unit)}` : ''}`);
      }
      if (d.message) parts.push(str(d.message));
      return parts.join(' · ');
    }
    case 'stage':
      return [str(d.name), str(d.message)].filter(Boolean).join(': ');
    case 'log':
      return `${d.level && d.level !== 'info' ? `[${str(d.level)}] ` : ''}${str(d.message)}`;
    case 'failed': {
      const err = (d.error ?? {}) as Record<string, unknown>;
      return `${str(err.code)}: ${str(err.message)}`;
    }
    case 'completed':
      return d.result === undefined ? '' : JSON.stringify(d.result);
    case 'cancelled':
    case 'paused':
    case 'resumed':
    case 'cancel_requested':
    case 'pause_requested':
    case 'resume_requested':
      return [d.by ? `by ${str(d.by)}` : '', str(d.reason)].filter(Boolean).join(': ');
    case 'created':
      return `owner ${str(d.owner)}${d.kind ? `, kind ${str(d.kind)}` : ''}${d.parent ? `, in ${str(d.parent)}` : ''}`;
    case 'stalled':
      return `no report since ${formatClock(str(d.since))}`;
    case 'unstalled':
      return 'reporting again';
    case 'children': {
      const c = d as { total?: number; completed?: number; failed?: number; cancelled?: number };
      return `${c.completed ?? 0} of ${c.total ?? 0} done, ${c.failed ?? 0} failed, ${c.cancelled ?? 0} cancelled`;
    }
    default:
      return Object.keys(d).length ? JSON.stringify(d) : str(d.reason);
  }
}

const EventRow = memo(function EventRow({ event }: { event: JobEvent }) {
  return (
    <tr data-seq={event.seq} data-kind={event.kind}>
      <td className="log__seq">{event.seq}</td>
      <td className="log__time">
        <time dateTime={event.at}>{formatClock(event.at)}</time>
      </td>
      <td className="log__kind">{event.kind}</td>
      <td className="log__data">{describeEvent(event)}</td>
    </tr>
  );
});

function EventLogTable({ id }: { id: string }) {
  const log = useEventLog(id);
  const [shown, setShown] = useState(PAGE_SIZE * 2);
  const rows = log.events.slice(0, shown);
  const more = log.events.length > shown || log.hasOlder;
  return (
    <section className="card" aria-labelledby="log-title">
      <h2 id="log-title">Event log</h2>
      <p className="muted">Newest first; new events appear at the top as they happen.</p>
      {log.error && (
        <p className="notice notice--error" role="alert">
          Part of the history could not be read: <code>{log.error}</code>
        </p>
      )}
      <div className="log-scroll">
        <table className="log" aria-describedby="log-title" aria-busy={log.loading}>
          <thead>
            <tr>
              <th scope="col">Seq</th>
              <th scope="col">Time</th>
              <th scope="col">Event</th>
              <th scope="col">Details</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((event) => (
              <EventRow key={event.seq} event={event} />
            ))}
          </tbody>
        </table>
      </div>
      {rows.length === 0 && <p className="muted">{log.loading ? 'Loading the history…' : 'No events.'}</p>}
      {more && (
        <button
          type="button"
          onClick={() => {
            if (log.events.length <= shown) log.loadOlder();
            setShown((n) => n + PAGE_SIZE);
          }}
          disabled={log.loading}
        >
          Show older events
        </button>
      )}
    </section>
  );
}

// ---------------------------------------------------------------------------
// Details

function JsonValue({ value }: { value: unknown }) {
  if (typeof value === 'string') return <span>{value}</span>;
  return <code className="json-inline">{JSON.stringify(value)}</code>;
}

function safeLink(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
  } catch {
    return null;
  }
}

function ResultCard({ result }: { result: unknown }) {
  if (result === null || result === undefined) return null;
  const url = safeLink((result as { url?: unknown }).url);
  return (
    <section className="card" aria-labelledby="result-title">
      <h2 id="result-title">Result</h2>
      {url && (
        <p>
          <a href={url} rel="noreferrer noopener" target="_blank">
            {url}
          </a>
        </p>
      )}
      <pre className="json">{JSON.stringify(result, null, 2)}</pre>
    </section>
  );
}

function BatchItems({ id, scope, now }: { id: string; scope: 'user' | 'all'; now: number }) {
  const { jobs } = useJobs({ scope });
  const items = jobs
    .filter((j) => j.parent === id)
    .sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.id < b.id ? -1 : 1));
  if (items.length === 0) return null;
  return (
    <section className="card" aria-labelledby="items-title">
      <h2 id="items-title">Items ({items.length})</h2>
      <ul className="items">
        {items.map((item) => (
          <li key={item.id} data-job-id={item.id}>
            <Link to={jobPath(item.id)}>{item.name || item.id}</Link>
            <StatusBadge status={item.status} />
            <ProgressBar job={item} details={false} label={`Progress of ${item.name || item.id}`} />
            <span className="muted">
              {formatPercent(item)} · {formatAgo(item.updatedAt, now)}
            </span>
          </li>
        ))}
      </ul>
    </section>
  );
}

export function JobView({ id, scope }: { id: string; scope: 'user' | 'all' }) {
  const { job, error, connection } = useJob(id);
  const now = useNow();

  useEffect(() => {
    document.title = job ? `${formatPercent(job)} ${job.name || job.id} · Headway` : 'Job · Headway';
    return () => {
      document.title = 'Headway';
    };
  }, [job]);

  if (!job) {
    return (
      <div className="job-view">
        <p>
          <Link to="/">← All jobs</Link>
        </p>
        <h1 tabIndex={-1}>{id}</h1>
        {error?.code === 'HW_ERR_NOT_FOUND' ? (
          <p className="notice" role="alert">
            There is no job <code>{id}</code>, or this token may not see it.
          </p>
        ) : error ? (
          <p className="notice notice--error" role="alert">
            The job cannot be watched: <code>{error.code}</code>
          </p>
        ) : (
          <p>{connection === 'connected' ? 'Loading…' : 'Connecting…'}</p>
        )}
      </div>
    );
  }

  const rate = formatRate(job);
  // The label says "Time left": the value does not say it again.
  const eta = formatTimeLeft(job, now, { left: false });
  return (
    <div className="job-view" data-job-id={job.id} data-status={job.status}>
      <p className="breadcrumbs">
        <Link to="/">← All jobs</Link>
        {job.parent && (
          <>
            {' · '}
            <Link to={jobPath(job.parent)}>batch {job.parent}</Link>
          </>
        )}
      </p>
      <div className="job-view__header">
        <h1 tabIndex={-1}>{job.name || job.id}</h1>
        <StatusBadge status={job.status} cancelling={job.control.cancelRequested && isActive(job)} />
      </div>
      <p className="job-view__sub">
        <code>{job.id}</code> · owner <strong>{job.owner}</strong>
        {job.kind && (
          <>
            {' '}
            · kind <strong>{job.kind}</strong>
          </>
        )}{' '}
        · updated <time dateTime={job.updatedAt}>{formatAgo(job.updatedAt, now)}</time>
      </p>

      <div className="job-view__grid">
        <div className="job-view__main">
          <section className="card" aria-labelledby="state-title">
            <h2 id="state-title">State</h2>
            <ProgressBar job={job} label={`Progress of ${job.name || job.id}`} />
            <dl className="facts">
              <div>
                <dt>Progress</dt>
                <dd className="job-view__percent">{formatPercent(job)}</dd>
              </div>
              {job.progress.current !== undefined && (
                <div>
                  <dt>Done</dt>
                  <dd>
                    {job.progress.unit === 'bytes'
                      ? `${formatBytes(job.progress.current)}${job.progress.total !== undefined ? ` of ${formatBytes(job.progress.total)}` : ''}`
                      : `${formatNumber(job.progress.current)}${job.progress.total !== undefined ? ` of ${formatNumber(job.progress.total)}` : ''} ${job.progress.unit ?? ''}`}
                  </dd>
                </div>
              )}
              {eta && (
                <div>
                  <dt>Time left</dt>
                  <dd className={job.stalled ? 'job-view__stalled' : undefined}>
                    {eta}
                    {job.eta && !job.stalled && (
                      <span className="muted">
                        {' '}
                        ({Math.round(job.eta.confidence * 100)}% sure
                        {job.eta.basis ? `, ${BASIS_TEXT[job.eta.basis]}` : ''})
                      </span>
                    )}
                  </dd>
                </div>
              )}
              {rate && (
                <div>
                  <dt>Rate</dt>
                  <dd>{rate}</dd>
                </div>
              )}
              {job.message && (
                <div className="facts__wide">
                  <dt>Message</dt>
                  <dd>{job.message}</dd>
                </div>
              )}
            </dl>
            <Controls job={job} />
          </section>

          <section className="card" aria-labelledby="stages-title">
            <h2 id="stages-title">Stages</h2>
            <StageTimeline job={job} now={now} />
          </section>

          {job.error && (
            <section className="card card--error" aria-labelledby="error-title">
              <h2 id="error-title">Error</h2>
              <dl className="facts">
                <div>
                  <dt>Code</dt>
                  <dd>
                    <code>{job.error.code}</code>
                  </dd>
                </div>
                <div className="facts__wide">
                  <dt>Message</dt>
                  <dd>{job.error.message}</dd>
                </div>
                <div>
                  <dt>Retryable</dt>
                  <dd>{job.error.retryable ? 'yes' : 'no'}</dd>
                </div>
                {job.error.stage && (
                  <div>
                    <dt>Stage</dt>
                    <dd>{job.error.stage}</dd>
                  </div>
                )}
              </dl>
            </section>
          )}
          <ResultCard result={job.result} />
          <EventLogTable id={job.id} />
        </div>

        <aside className="job-view__side">
          <section className="card" aria-labelledby="details-title">
            <h2 id="details-title">Details</h2>
            <dl className="facts facts--list">
              <div>
                <dt>Created</dt>
                <dd>{formatDateTime(job.createdAt)}</dd>
              </div>
              <div>
                <dt>Started</dt>
                <dd>{formatDateTime(job.startedAt) || '—'}</dd>
              </div>
              <div>
                <dt>Finished</dt>
                <dd>{formatDateTime(job.finishedAt) || '—'}</dd>
              </div>
              {job.startedAt && (
                <div>
                  <dt>Duration</dt>
                  <dd>
                    {formatDuration(
                      (job.finishedAt ? Date.parse(job.finishedAt) : now) - Date.parse(job.startedAt),
                    )}
                  </dd>
                </div>
              )}
              <div>
                <dt>Seq</dt>
                <dd className="job-view__seq">{job.seq}</dd>
              </div>
              {job.children && (
                <div>
                  <dt>Items</dt>
                  <dd>
                    {job.children.completed} completed, {job.children.failed} failed, {job.children.cancelled}{' '}
                    cancelled of {job.children.total}
                  </dd>
                </div>
              )}
            </dl>
          </section>
          <section className="card" aria-labelledby="metadata-title">
            <h2 id="metadata-title">Metadata</h2>
            {Object.keys(job.metadata).length === 0 ? (
              <p className="muted">None.</p>
            ) : (
              <dl className="facts facts--list">
                {Object.entries(job.metadata).map(([key, value]) => (
                  <div key={key}>
                    <dt>{key}</dt>
                    <dd>
                      <JsonValue value={value} />
                    </dd>
                  </div>
                ))}
              </dl>
            )}
          </section>
          {job.children && <BatchItems id={job.id} scope={scope} now={now} />}
        </aside>
      </div>
    </div>
  );
}
