/**
 * The jobs view: every job of the token's scope, live — active ones first,
 * then the recently finished — with a search by id, name or owner and filters
 * by status, owner, kind and time, run by the hub over every stored job (page
 * by page), and batches that expand into their items. The list is windowed and
 * updated once per animation frame (by `useJobs`), so it stays smooth with a
 * thousand jobs reporting ten times a second.
 */
import type { JobState } from '@headway/client';
import { JOB_ID } from '@headway/protocol/codes';
import {
  formatEtaRange,
  formatPercent,
  formatStage,
  formatStall,
  ProgressBar,
  useJobs,
} from '@headway/react';
import { type KeyboardEvent, memo, useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { StatusBadge } from '../components/status-badge.js';
import { VirtualList } from '../components/virtual-list.js';
import { formatAgo, formatDuration, formatRate, isActive } from '../format.js';
import { useNow } from '../now.js';
import { jobPath, Link, navigate, useLocation } from '../router.js';
import { CREATED_WITHIN, type Filters, STATUSES, useJobSearch } from '../use-job-search.js';
import { NARROW_QUERY, useMediaQuery } from '../use-media-query.js';

/** Height of one row, px (the stylesheet lays rows out for it): one line on a wide screen, a card on a phone. */
const ROW_HEIGHT = 60;
const NARROW_ROW_HEIGHT = 116;
const NO_FILTERS: Filters = { status: '', owner: '', kind: '', q: '', created: '' };

interface Row {
  job: JobState;
  depth: 0 | 1;
  /** Items of a batch in the list (0 for other jobs). */
  items: number;
  expanded: boolean;
}

function readFilters(search: string): Filters {
  const p = new URLSearchParams(search);
  const f = { ...NO_FILTERS };
  for (const key of Object.keys(NO_FILTERS) as (keyof Filters)[]) f[key] = p.get(key) ?? '';
  return f;
}

function writeFilters(f: Filters): void {
  const p = new URLSearchParams();
  for (const [key, value] of Object.entries(f)) if (value) p.set(key, value);
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

/** The hub's filters, applied again here to the live jobs (which change status, and arrive new). */
function matcher(f: Filters, withQuery: boolean, now: number): (job: JobState) => boolean {
  const q = f.q.trim().toLowerCase();
  const kind = f.kind.trim();
  const within = CREATED_WITHIN[f.created];
  const since = within ? new Date(now - within.ms).toISOString() : '';
  return (job) => {
    if (f.status === 'active' ? !isActive(job) : f.status !== '' && job.status !== f.status) return false;
    if (f.owner && job.owner !== f.owner) return false;
    if (kind && job.kind !== kind) return false;
    if (since && job.createdAt < since) return false;
    if (withQuery && q && ![job.id, job.name, job.owner].some((text) => text.toLowerCase().includes(q)))
      return false;
    return true;
  };
}

/** The live jobs and those the hub found, once each: the later state (higher seq) wins. */
function mergeJobs(live: readonly JobState[], found: readonly JobState[]): JobState[] {
  const byId = new Map<string, JobState>();
  for (const job of found) byId.set(job.id, job);
  for (const job of live) {
    const other = byId.get(job.id);
    if (!other || other.seq <= job.seq) byId.set(job.id, job);
  }
  return [...byId.values()];
}

/** The rows to show: top-level jobs (active first, then recent), each expanded batch followed by its items. */
function buildRows(jobs: readonly JobState[], f: Filters, expanded: ReadonlySet<string>, now: number): Row[] {
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
  const matches = matcher(f, true, now);
  const matchesButQuery = matcher(f, false, now);
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
  if (job.stalled) return formatStall(job);
  if (job.status === 'running') return job.eta ? formatEtaRange(job.eta) : 'estimating…';
  if (job.status === 'queued') return job.eta ? `waiting · ${formatEtaRange(job.eta)}` : 'waiting to start';
  if (job.status === 'paused') return job.eta ? `paused · ${formatEtaRange(job.eta)}` : 'paused';
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
      <div className="job-row__eta" data-stalled={job.stalled ? true : undefined}>
        {etaText(job)}
      </div>
      <div className="job-row__rate">{formatRate(job)}</div>
      <div className="job-row__updated">
        <span className="sr-only">updated </span>
        <time dateTime={job.updatedAt}>{formatAgo(job.updatedAt, now)}</time>
      </div>
    </div>
  );
});

export function JobsView({ scope }: { scope: 'user' | 'all' }) {
  const { jobs: live, connection, error } = useJobs({ scope });
  const { search } = useLocation();
  const filters = useMemo(() => readFilters(search), [search]);
  const found = useJobSearch(filters);
  const [expanded, setExpanded] = useState<ReadonlySet<string>>(() => new Set());
  const [loaded, setLoaded] = useState(false);
  const now = useNow();
  const heading = useRef<HTMLHeadingElement>(null);
  const narrow = useMediaQuery(NARROW_QUERY);

  useEffect(() => {
    if (connection === 'connected' || live.length > 0) setLoaded(true);
  }, [connection, live.length]);

  const toggle = useCallback((id: string) => {
    setExpanded((prev) => {
      const next = new Set(prev);
      if (!next.delete(id)) next.add(id);
      return next;
    });
  }, []);

  const jobs = useMemo(() => mergeJobs(live, found.jobs), [live, found.jobs]);
  // The time range moves with the clock only once a minute: rows do not flicker in and out each second.
  const minute = Math.floor(now / 60_000) * 60_000;
  const rows = useMemo(() => buildRows(jobs, filters, expanded, minute), [jobs, filters, expanded, minute]);
  const owners = useMemo(() => [...new Set(jobs.map((j) => j.owner))].sort(), [jobs]);
  // The hub's counts cover every stored job that matches; until they come, the jobs at hand (a batch once).
  const counts = useMemo(() => {
    if (found.counts) {
      const c = found.counts;
      return { active: c.queued + c.running + c.paused, finished: c.completed + c.failed + c.cancelled };
    }
    const ids = new Set(jobs.map((j) => j.id));
    let active = 0;
    let finished = 0;
    for (const j of jobs) {
      if (j.parent !== null && ids.has(j.parent)) continue;
      if (isActive(j)) active++;
      else finished++;
    }
    return { active, finished };
  }, [jobs, found.counts]);
  const filtered = Object.values(filters).some((value) => value.trim() !== '');

  const set = (patch: Partial<Filters>) => writeFilters({ ...filters, ...patch });

  const onRowKey = (row: Row, e: KeyboardEvent) => {
    if (row.items > 0 && (e.key === 'ArrowRight' || e.key === 'ArrowLeft')) {
      if (row.expanded === (e.key === 'ArrowLeft')) toggle(row.job.id);
      return true;
    }
    return false;
  };
  const countOf = (status: string) => (found.counts ? ` (${found.counts[status as 'queued']})` : '');

  return (
    <div className="jobs-view">
      <div className="view-header">
        <h1 ref={heading} tabIndex={-1}>
          Jobs
        </h1>
        <p className="jobs-view__counts" aria-live="off">
          <span>{counts.active} active</span> · <span>{counts.finished} finished</span>
          {filtered && (
            <span>
              {' '}
              · {rows.length} shown{found.more ? ' so far' : ''}
            </span>
          )}
        </p>
      </div>
      <search aria-label="Filter jobs">
        <form
          className="filters"
          onSubmit={(e) => {
            e.preventDefault();
            // An exact id opens the job.
            const id = filters.q.trim();
            if (JOB_ID.test(id) && jobs.some((j) => j.id === id)) navigate(jobPath(id));
          }}
        >
          <label className="field field--grow">
            <span>Search</span>
            <input
              type="search"
              placeholder="Id, name or owner"
              value={filters.q}
              onChange={(e) => set({ q: e.target.value })}
            />
          </label>
          <label className="field">
            <span>Status</span>
            <select value={filters.status} onChange={(e) => set({ status: e.target.value })}>
              <option value="">All</option>
              <option value="active">Active{found.counts ? ` (${counts.active})` : ''}</option>
              {STATUSES.map((s) => (
                <option key={s} value={s}>
                  {s}
                  {countOf(s)}
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
          <label className="field">
            <span>Kind</span>
            <input
              type="text"
              className="filters__kind"
              placeholder="Any"
              value={filters.kind}
              onChange={(e) => set({ kind: e.target.value })}
            />
          </label>
          <label className="field">
            <span>Created</span>
            <select value={filters.created} onChange={(e) => set({ created: e.target.value })}>
              <option value="">Any time</option>
              {Object.entries(CREATED_WITHIN).map(([value, { label }]) => (
                <option key={value} value={value}>
                  {label}
                </option>
              ))}
            </select>
          </label>
          {filtered && (
            <button type="button" onClick={() => writeFilters(NO_FILTERS)}>
              Clear filters
            </button>
          )}
        </form>
      </search>
      {(error || found.error) && (
        <p className="notice notice--error" role="alert">
          The jobs cannot be listed: {error?.code ?? found.error}
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
            {!loaded || (filtered && !found.answered) ? (
              <p>{filtered ? 'Searching…' : 'Loading jobs…'}</p>
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
      {found.more && (
        <p className="jobs-view__more">
          <button type="button" onClick={found.loadMore} disabled={found.loading}>
            {found.loading ? 'Loading…' : 'Show more jobs'}
          </button>
        </p>
      )}
    </div>
  );
}
