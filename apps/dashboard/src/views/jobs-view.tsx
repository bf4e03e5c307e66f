/**
 * The jobs view: every job of the token's scope, live — active ones first,
 * then the recently finished — with filters by status and owner, a search by
 * name or id, and batches that expand into their items. The list is windowed
 * and updated once per animation frame (by `useJobs`), so it stays smooth with
 * a thousand jobs reporting ten times a second.
 */
import type { JobState, JobStatus } from '@headway/client';
import { formatEta, formatPercent, formatStage, ProgressBar, useJobs } from '@headway/react';
import { type KeyboardEvent, memo, useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { StatusBadge } from '../components/status-badge.js';
import { VirtualList } from '../components/virtual-list.js';
import { formatAgo, formatDuration, formatRate, isActive } from '../format.js';
import { useNow } from '../now.js';
import { jobPath, Link, navigate, useLocation } from '../router.js';
import { NARROW_QUERY, useMediaQuery } from '../use-media-query.js';

/** Height of one row, px (the stylesheet lays rows out for it): one line on a wide screen, a card on a phone. */
const ROW_HEIGHT = 60;
const NARROW_ROW_HEIGHT = 116;
const STATUSES: JobStatus[] = ['queued', 'running', 'paused', 'completed', 'failed', 'cancelled'];

interface Filters {
  /** `''` (all), `active`, or one status. */
  status: string;
  owner: string;
  q: string;
}

interface Row {
  job: JobState;
  depth: 0 | 1;
  /** Items of a batch in the list (0 for other jobs). */
  items: number;
  expanded: boolean;
}

function readFilters(search: string): Filters {
  const p = new URLSearchParams(search);
  return { status: p.get('status') ?? '', owner: p.get('owner') ?? '', q: p.get('q') ?? '' };
}

function writeFilters(f: Filters): void {
  const p = new URLSearchParams();
  if (f.status) p.set('status', f.status);
  if (f.owner) p.set('owner', f.owner);
  if (f.q) p.set('q', f.q);
  const query = p.toString();
  // Filters replace the entry: Back leaves the jobs view instead of undoing each keystroke.
  navigate(query ? `/?${query}` : '/', { replace: true });
}

/** Finished jobs by when they finished, newest first; active ones by creation, newest first. */
function byRecency(a: JobState, b: JobState): number {
  const ka = isActive(a) ? a.createdAt : (a.finishedAt ?? a.updatedAt);
  const kb = isActive(b) ? b.createdAt : (b.finishedAt ?? b.updatedAt);
  return ka < kb ? 1 : ka > kb ? -1 : a.id < b.id ? -1 : 1;
}

const byCreation = (a: JobState, b: JobState) =>
  a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.id < b.id ? -1 : 1;

function matcher(f: Filters, withQuery: boolean): (job: JobState) => boolean {
  const q = f.q.trim().toLowerCase();
  return (job) => {
    if (f.status === 'active' ? !isActive(job) : f.status !== '' && job.status !== f.status) return false;
    if (f.owner && job.owner !== f.owner) return false;
    if (withQuery && q && !job.name.toLowerCase().includes(q) && !job.id.toLowerCase().includes(q))
      return false;
    return true;
  };
}

/** The rows to show: top-level jobs (active first, then recent), each expanded batch followed by its items. */
function buildRows(jobs: readonly JobState[], f: Filters, expanded: ReadonlySet<string>): Row[] {
  const ids = new Set(jobs.map((j) => j.id));
  const children = new Map<string, JobState[]>();
  const top: JobState[] = [];
  for (const job of jobs) {
    if (job.parent !== null && ids.has(job.parent)) {
      let list = children.get(job.parent);
      if (!list) children.set(job.parent, (list = []));
      list.push(job);
    } else {
      top.push(job);
    }
  }
  const matches = matcher(f, true);
  const matchesButQuery = matcher(f, false);
  const active = top.filter(isActive).sort(byRecency);
  const finished = top.filter((j) => !isActive(j)).sort(byRecency);
  const rows: Row[] = [];
  for (const job of [...active, ...finished]) {
    const items = children.get(job.id) ?? [];
    const self = matches(job);
    // A batch shows when it or one of its items matches; a search that names the batch shows all its items.
    const shown = items.filter(self ? matchesButQuery : matches);
    if (!self && shown.length === 0) continue;
    const open = expanded.has(job.id);
    rows.push({ job, depth: 0, items: items.length, expanded: open });
    if (open)
      for (const child of shown.sort(byCreation))
        rows.push({ job: child, depth: 1, items: 0, expanded: false });
  }
  return rows;
}

function etaText(job: JobState): string {
  if (job.status === 'running') return job.eta ? formatEta(job.eta.seconds) : 'estimating…';
  if (job.status === 'queued') return 'waiting to start';
  if (job.status === 'paused') return 'paused';
  if (job.startedAt && job.finishedAt) {
    return `took ${formatDuration(Date.parse(job.finishedAt) - Date.parse(job.startedAt))}`;
  }
  return '';
}

function detailText(job: JobState): string {
  if (job.status === 'failed' && job.error) return `${job.error.code}: ${job.error.message}`;
  if (job.children && job.children.total > 0) {
    const c = job.children;
    const done = `${c.completed} of ${c.total} done`;
    const extra = [c.failed && `${c.failed} failed`, c.cancelled && `${c.cancelled} cancelled`].filter(
      Boolean,
    );
    return extra.length ? `${done}, ${extra.join(', ')}` : done;
  }
  return formatStage(job) || job.message || '';
}

/** Props are the row's parts, not the row object (rebuilt every frame), so that unchanged rows skip rendering. */
interface JobRowProps extends Row {
  active: boolean;
  now: number;
  onToggle: (id: string) => void;
}

const JobRow = memo(function JobRow({ job, depth, items, expanded, active, now, onToggle }: JobRowProps) {
  const name = job.name || job.id;
  return (
    <div className="job-row" data-job-id={job.id} data-status={job.status} data-depth={depth}>
      <div className="job-row__toggle">
        {items > 0 && (
          <button
            type="button"
            className="icon-button"
            tabIndex={active ? 0 : -1}
            aria-expanded={expanded}
            aria-label={`${expanded ? 'Collapse' : 'Expand'} ${name} (${items} items)`}
            onClick={() => onToggle(job.id)}
          >
            <span aria-hidden="true">{expanded ? '▾' : '▸'}</span>
          </button>
        )}
      </div>
      <div className="job-row__name">
        <Link to={jobPath(job.id)} data-row-focus="" tabIndex={active ? 0 : -1} title={name}>
          {name}
        </Link>
        <span className="job-row__id">{job.id}</span>
      </div>
      <div className="job-row__owner">
        <span className="sr-only">owner </span>
        {job.owner}
      </div>
      <div className="job-row__status">
        <StatusBadge status={job.status} cancelling={job.control.cancelRequested && isActive(job)} />
      </div>
      <div className="job-row__progress">
        <ProgressBar job={job} details={false} label={`Progress of ${name}`} />
        <div className="job-row__detail">
          <span className="job-row__percent">{formatPercent(job)}</span>
          <span className="job-row__stage">{detailText(job)}</span>
        </div>
      </div>
      <div className="job-row__eta">{etaText(job)}</div>
      <div className="job-row__rate">{formatRate(job)}</div>
      <div className="job-row__updated">
        <span className="sr-only">updated </span>
        <time dateTime={job.updatedAt}>{formatAgo(job.updatedAt, now)}</time>
      </div>
    </div>
  );
});

export function JobsView({ scope }: { scope: 'user' | 'all' }) {
  const { jobs, connection, error } = useJobs({ scope });
  const { search } = useLocation();
  const filters = useMemo(() => readFilters(search), [search]);
  const [expanded, setExpanded] = useState<ReadonlySet<string>>(() => new Set());
  const [loaded, setLoaded] = useState(false);
  const now = useNow();
  const heading = useRef<HTMLHeadingElement>(null);
  const narrow = useMediaQuery(NARROW_QUERY);

  useEffect(() => {
    if (connection === 'connected' || jobs.length > 0) setLoaded(true);
  }, [connection, jobs.length]);

  const toggle = useCallback((id: string) => {
    setExpanded((prev) => {
      const next = new Set(prev);
      if (!next.delete(id)) next.add(id);
      return next;
    });
  }, []);

  const rows = useMemo(() => buildRows(jobs, filters, expanded), [jobs, filters, expanded]);
  const owners = useMemo(() => [...new Set(jobs.map((j) => j.owner))].sort(), [jobs]);
  // Batches count once, with their items inside.
  const counts = useMemo(() => {
    const ids = new Set(jobs.map((j) => j.id));
    let active = 0;
    let finished = 0;
    for (const j of jobs) {
      if (j.parent !== null && ids.has(j.parent)) continue;
      if (isActive(j)) active++;
      else finished++;
    }
    return { active, finished };
  }, [jobs]);
  const filtered = filters.status !== '' || filters.owner !== '' || filters.q.trim() !== '';

  const set = (patch: Partial<Filters>) => writeFilters({ ...filters, ...patch });

  const onRowKey = (row: Row, e: KeyboardEvent) => {
    if (row.items > 0 && (e.key === 'ArrowRight' || e.key === 'ArrowLeft')) {
      if (row.expanded === (e.key === 'ArrowLeft')) toggle(row.job.id);
      return true;
    }
    return false;
  };

  return (
    <div className="jobs-view">
      <div className="view-header">
        <h1 ref={heading} tabIndex={-1}>
          Jobs
        </h1>
        <p className="jobs-view__counts" aria-live="off">
          <span>{counts.active} active</span> · <span>{counts.finished} finished</span>
          {filtered && <span> · {rows.length} shown</span>}
        </p>
      </div>
      <search aria-label="Filter jobs">
        <form
          className="filters"
          onSubmit={(e) => {
            e.preventDefault();
            // An exact id opens the job, even one too old to be in the live list.
            const id = filters.q.trim();
            if (/^[A-Za-z0-9._:-]{1,128}$/.test(id) && (rows.length === 0 || jobs.some((j) => j.id === id))) {
              navigate(jobPath(id));
            }
          }}
        >
          <label className="field field--grow">
            <span>Search</span>
            <input
              type="search"
              placeholder="Name or id"
              value={filters.q}
              onChange={(e) => set({ q: e.target.value })}
            />
          </label>
          <label className="field">
            <span>Status</span>
            <select value={filters.status} onChange={(e) => set({ status: e.target.value })}>
              <option value="">All</option>
              <option value="active">Active</option>
              {STATUSES.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          </label>
          <label className="field">
            <span>Owner</span>
            <select value={filters.owner} onChange={(e) => set({ owner: e.target.value })}>
              <option value="">All owners</option>
              {(filters.owner && !owners.includes(filters.owner) ? [filters.owner, ...owners] : owners).map(
                (o) => (
                  <option key={o} value={o}>
                    {o}
                  </option>
                ),
              )}
            </select>
          </label>
          {filtered && (
            <button type="button" onClick={() => writeFilters({ status: '', owner: '', q: '' })}>
              Clear filters
            </button>
          )}
        </form>
      </search>
      {error && (
        <p className="notice notice--error" role="alert">
          The jobs cannot be listed: {error.code}
        </p>
      )}
      <div className="job-table" data-count={rows.length}>
        <div className="job-row job-row--head" aria-hidden="true">
          <div />
          <div>Name</div>
          <div className="job-row__owner">Owner</div>
          <div>Status</div>
          <div>Progress</div>
          <div className="job-row__eta">Time left</div>
          <div className="job-row__rate">Rate</div>
          <div className="job-row__updated">Updated</div>
        </div>
        {rows.length > 0 ? (
          <VirtualList
            items={rows}
            rowHeight={narrow ? NARROW_ROW_HEIGHT : ROW_HEIGHT}
            getKey={(row) => row.job.id}
            label="Jobs"
            onRowKey={onRowKey}
            renderRow={(row, { active }) => <JobRow {...row} active={active} now={now} onToggle={toggle} />}
          />
        ) : (
          <div className="empty">
            {!loaded ? (
              <p>Loading jobs…</p>
            ) : filtered ? (
              <p>No job matches these filters.</p>
            ) : (
              <p>
                No jobs yet. Workers create them with <code>POST /v1/jobs</code>; with <code>--demo</code> the
                hub runs sample ones.
              </p>
            )}
          </div>
        )}
      </div>
    </div>
  );
}
