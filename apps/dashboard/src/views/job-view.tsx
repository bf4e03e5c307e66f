/**
 * One job: its state and progress, the stage timeline with each stage's
 * duration, the event log (history, live on top), metadata, result and error,
 * and Cancel / Pause / Resume behind a confirmation, with the hub's
 * acknowledgement shown and then what the worker did about it.
 */
import type { ControlAction, HeadwayClientError, JobEvent, JobState } from '@headway/client';
import { formatPercent, formatTimeLeft, ProgressBar, useClient, useJob, useJobs } from '@headway/react';
import { memo, useEffect, useState } from 'react';
import { ConfirmDialog } from '../components/confirm-dialog.js';
import { StatusBadge } from '../components/status-badge.js';
import {
  formatAgo,
  formatBytes,
  formatClock,
  formatDateTime,
  formatDuration,
  formatNumber,
  formatRate,
  formatTime,
  isActive,
} from '../format.js';
import { useNow } from '../now.js';
import { jobPath, Link } from '../router.js';
import { PAGE_SIZE, useEventLog } from '../use-event-log.js';

// ---------------------------------------------------------------------------
// Controls

interface Ack {
  action: ControlAction;
  phase: 'sending' | 'acknowledged' | 'refused';
  at?: string;
  seq?: number;
  code?: string;
}

const VERBS: Record<ControlAction, { label: string; past: string; noun: string }> = {
  cancel: { label: 'Cancel', past: 'cancelled', noun: 'cancel' },
  pause: { label: 'Pause', past: 'paused', noun: 'pause' },
  resume: { label: 'Resume', past: 'resumed', noun: 'resume' },
};

/** What an estimate rests on, in words. */
const BASIS_TEXT: Record<string, string> = {
  history: 'from earlier jobs of this kind',
  rate: 'from its pace so far',
  both: 'from earlier jobs and its pace',
  none: 'no basis yet',
};

/** What happened after the hub acknowledged: whether the worker has acted on it yet. */
function outcome(ack: Ack, job: JobState): string {
  if (ack.action === 'cancel') {
    if (job.status === 'cancelled') return 'The worker stopped: the job is cancelled.';
    if (!isActive(job)) return `The job ended first: it is ${job.status}.`;
    return 'Waiting for the worker to stop…';
  }
  if (ack.action === 'pause') {
    if (job.status === 'paused') return 'The worker paused.';
    if (!isActive(job)) return `The job ended first: it is ${job.status}.`;
    return 'Waiting for the worker to pause…';
  }
  if (job.status === 'running') return 'The worker resumed.';
  if (job.status === 'paused') return 'Waiting for the worker to resume…';
  return `The job is ${job.status}.`;
}

function Controls({ job }: { job: JobState }) {
  const client = useClient();
  const [asking, setAsking] = useState<ControlAction | null>(null);
  const [ack, setAck] = useState<Ack | null>(null);
  const name = job.name || job.id;
  const sending = ack?.phase === 'sending';

  const send = async (action: ControlAction, reason: string | undefined) => {
    setAsking(null);
    setAck({ action, phase: 'sending' });
    try {
      const state = await client.control(job.id, action, reason);
      setAck({ action, phase: 'acknowledged', at: new Date().toISOString(), seq: state.seq });
    } catch (err) {
      setAck({ action, phase: 'refused', code: (err as HeadwayClientError).code ?? 'HW_ERR_INTERNAL' });
    }
  };

  const actions: ControlAction[] = [];
  if (isActive(job) && !job.control.cancelRequested) {
    if (job.status === 'paused' || job.control.paused) actions.push('resume');
    else actions.push('pause');
    actions.push('cancel');
  }

  const texts: Record<ControlAction, { title: string; body: string; confirm: string; dismiss: string }> = {
    cancel: {
      title: `Cancel “${name}”?`,
      body:
        'The worker is asked to stop at its next report. A job that has not started is cancelled at once; ' +
        'a batch cancels its unfinished items.',
      confirm: 'Cancel job',
      dismiss: 'Keep running',
    },
    pause: {
      title: `Pause “${name}”?`,
      body: 'The worker is asked to pause at its next report, and to wait until it is resumed.',
      confirm: 'Pause job',
      dismiss: 'Keep running',
    },
    resume: {
      title: `Resume “${name}”?`,
      body: 'The worker is asked to carry on where it paused.',
      confirm: 'Resume job',
      dismiss: 'Stay paused',
    },
  };
  const dialog = asking ? texts[asking] : null;
  if (actions.length === 0 && !ack) return null;

  return (
    <div className="controls">
      {actions.length > 0 && (
        <div className="controls__buttons">
          {actions.map((action) => (
            <button
              key={action}
              type="button"
              className={action === 'cancel' ? 'button--danger' : undefined}
              disabled={sending}
              onClick={() => setAsking(action)}
            >
              {VERBS[action].label}
            </button>
          ))}
        </div>
      )}
      <p className="controls__ack" role="status" data-phase={ack?.phase ?? ''}>
        {ack?.phase === 'sending' && `Sending the ${VERBS[ack.action].noun} request…`}
        {ack?.phase === 'acknowledged' && (
          <>
            <span className="ack__symbol" aria-hidden="true">
              ✓{' '}
            </span>
            {VERBS[ack.action].label} requested: acknowledged by the hub at {formatClock(ack.at!)} (seq{' '}
            {ack.seq}
            ). {outcome(ack, job)}
          </>
        )}
        {ack?.phase === 'refused' && (
          <>
            <span className="ack__symbol" aria-hidden="true">
              ✕{' '}
            </span>
            The hub refused the {VERBS[ack.action].noun} request: <code>{ack.code}</code>
          </>
        )}
      </p>
      <ConfirmDialog
        open={dialog !== null}
        title={dialog?.title ?? ''}
        confirmLabel={dialog?.confirm ?? ''}
        dismissLabel={dialog?.dismiss}
        reason
        danger={asking === 'cancel'}
        onConfirm={(reason) => asking && void send(asking, reason)}
        onClose={() => setAsking(null)}
      >
        <p>{dialog?.body}</p>
      </ConfirmDialog>
    </div>
  );
}

// ---------------------------------------------------------------------------
// Stage timeline

type StageMark = 'done' | 'current' | 'paused' | 'pending' | 'failed' | 'cancelled' | 'skipped';

const STAGE_SYMBOLS: Record<StageMark, string> = {
  done: '✓',
  current: '▶',
  paused: '⏸',
  pending: '○',
  failed: '✕',
  cancelled: '■',
  skipped: '–',
};

/**
 * How each stage stands. A job that ended other than by completing ended in
 * one stage (the one it was in, or the one its error names): that stage is
 * marked failed or cancelled, never done, and the stages after it were skipped.
 */
export function stageMarks(job: JobState): StageMark[] {
  const ended = job.status === 'failed' || job.status === 'cancelled';
  let stopIndex = -1;
  if (ended) {
    const named = job.status === 'failed' ? job.error?.stage : null;
    stopIndex = named ? job.stages.findIndex((s) => s.name === named) : -1;
    if (stopIndex < 0 && job.stage) stopIndex = job.stage.index;
  }
  return job.stages.map((stage, index) => {
    if (ended && stopIndex >= 0) {
      if (index === stopIndex) return job.status === 'failed' ? 'failed' : 'cancelled';
      if (index > stopIndex) return 'skipped';
      return 'done';
    }
    if (isActive(job) && job.stage?.index === index) return job.status === 'paused' ? 'paused' : 'current';
    if (stage.startedAt !== null) return 'done';
    return ended ? 'skipped' : 'pending';
  });
}

const STAGE_WORDS: Record<StageMark, string> = {
  done: 'done',
  current: '',
  paused: 'paused',
  pending: 'pending',
  failed: 'failed',
  cancelled: 'cancelled',
  skipped: 'not run',
};

function StageTimeline({ job, now }: { job: JobState; now: number }) {
  if (job.stages.length === 0) return <p className="muted">This job reports no stages.</p>;
  const marks = stageMarks(job);
  return (
    <ol className="timeline">
      {job.stages.map((stage, index) => {
        const mark = marks[index]!;
        const start = stage.startedAt ? Date.parse(stage.startedAt) : null;
        // A stage open when the job ended ends with it.
        const endIso = stage.endedAt ?? (start !== null && !isActive(job) ? job.finishedAt : null);
        const end = endIso ? Date.parse(endIso) : null;
        // The browser's clock may run behind the hub's: a stage never lasts less than nothing.
        const duration =
          start === null
            ? ''
            : end !== null
              ? formatDuration(Math.max(0, end - start))
              : `${formatDuration(Math.max(0, now - start))} so far`;
        // The stage's own percent where it stood or stopped: "cancelled at 11%".
        const percent = job.stage?.index === index ? `${Math.floor(job.stage.percent)}%` : '';
        const words =
          mark === 'current'
            ? percent
            : (mark === 'cancelled' || mark === 'failed' || mark === 'paused') && percent
              ? `${STAGE_WORDS[mark]} at ${percent}`
              : STAGE_WORDS[mark];
        return (
          <li key={stage.name} className="timeline__stage" data-state={mark}>
            <span className="timeline__symbol" aria-hidden="true">
              {STAGE_SYMBOLS[mark]}
            </span>
            <span className="timeline__name">{stage.name}</span>
            <span className="timeline__state">{words}</span>
            <span className="timeline__weight">weight {stage.weight}</span>
            <span className="timeline__duration">{duration}</span>
            <span className="timeline__started">
              {stage.startedAt ? `started ${formatTime(stage.startedAt)}` : ''}
            </span>
          </li>
        );
      })}
    </ol>
  );
}

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
