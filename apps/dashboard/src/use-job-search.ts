/**
 * The jobs view's query to the hub (`GET /v1/jobs`): search and filters run
 * on the hub over every stored job, not only the live window, page by page
 * (`next` cursors), with the count of matching jobs per status. The live
 * subscription keeps the jobs on screen current; this hook only finds them.
 */
import type { HeadwayClientError, JobState, JobStatus } from '@headway/client';
import { useClient } from '@headway/react';
import { useCallback, useEffect, useRef, useState } from 'react';

export const STATUSES: readonly JobStatus[] = [
  'queued',
  'running',
  'paused',
  'completed',
  'failed',
  'cancelled',
];
const ACTIVE = 'queued,running,paused';

/** What the jobs view filters on; kept in the address. */
export interface Filters {
  /** `''` (all), `active`, or one status. */
  status: string;
  owner: string;
  kind: string;
  /** Case-insensitive part of an id, name or owner. */
  q: string;
  /** Created within the last …: `''` (any time), `1h`, `24h`, `7d`. */
  created: string;
}

export const CREATED_WITHIN: Record<string, { label: string; ms: number }> = {
  '1h': { label: 'Last hour', ms: 3_600_000 },
  '24h': { label: 'Last 24 hours', ms: 86_400_000 },
  '7d': { label: 'Last 7 days', ms: 7 * 86_400_000 },
};

/** Jobs per page read from the hub. */
const PAGE = 100;
/** Pause after the last keystroke before the search goes to the hub, ms. */
const TYPING_MS = 250;
/** How often the counts are read again while the page is visible, ms. */
const COUNTS_MS = 5_000;

export type StatusCounts = Record<JobStatus, number>;

interface JobListAnswer {
  jobs: JobState[];
  next?: string;
  counts?: StatusCounts;
}

export interface JobSearch {
  /** Jobs the hub found so far, in its order (most recently updated first). */
  jobs: readonly JobState[];
  /** Matching jobs per status (every status, whatever the status filter). */
  counts: StatusCounts | null;
  /** More pages to read. */
  more: boolean;
  loading: boolean;
  /** Whether the hub has answered the current filters. */
  answered: boolean;
  error: string | null;
  loadMore: () => void;
}

/** The query string of `GET /v1/jobs` for these filters; `now` anchors the time range. */
export function searchQuery(f: Filters, now: number, options: { status: boolean }): URLSearchParams {
  const p = new URLSearchParams();
  const q = f.q.trim();
  if (q) p.set('q', q);
  if (f.owner) p.set('owner', f.owner);
  if (f.kind.trim()) p.set('kind', f.kind.trim());
  const within = CREATED_WITHIN[f.created];
  if (within) p.set('createdAfter', new Date(now - within.ms).toISOString());
  if (options.status && f.status) p.set('status', f.status === 'active' ? ACTIVE : f.status);
  return p;
}

export function useJobSearch(filters: Filters): JobSearch {
  const client = useClient();
  const [jobs, setJobs] = useState<readonly JobState[]>([]);
  const [counts, setCounts] = useState<StatusCounts | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const [answered, setAnswered] = useState(false);
  const [error, setError] = useState<string | null>(null);
  // Answers to an older query are dropped: the filters may change while a page is on its way.
  const generation = useRef(0);
  const key = JSON.stringify(filters);

  const read = useCallback(
    async (f: Filters, cursor: string | null, gen: number) => {
      const p = searchQuery(f, Date.now(), { status: true });
      p.set('limit', String(PAGE));
      p.set('counts', 'true');
      if (cursor) p.set('cursor', cursor);
      setLoading(true);
      try {
        const answer = await client.api<JobListAnswer>(`/v1/jobs?${p}`);
        if (gen !== generation.current) return;
        setJobs((list) => (cursor ? [...list, ...answer.jobs] : answer.jobs));
        if (answer.counts) setCounts(answer.counts);
        setNext(answer.next ?? null);
        setAnswered(true);
        setError(null);
      } catch (err) {
        if (gen === generation.current) setError((err as HeadwayClientError).code ?? 'HW_ERR_CLIENT_NETWORK');
      } finally {
        if (gen === generation.current) setLoading(false);
      }
    },
    [client],
  );

  useEffect(() => {
    const gen = ++generation.current;
    setAnswered(false);
    const f = JSON.parse(key) as Filters;
    const timer = setTimeout(() => void read(f, null, gen), f.q ? TYPING_MS : 0);
    return () => clearTimeout(timer);
  }, [key, read]);

  // The counts follow the jobs as they change status: read again now and then while visible.
  useEffect(() => {
    const f = JSON.parse(key) as Filters;
    const timer = setInterval(async () => {
      if (document.visibilityState !== 'visible') return;
      const gen = generation.current;
      const p = searchQuery(f, Date.now(), { status: true });
      p.set('limit', '1');
      p.set('counts', 'true');
      try {
        const answer = await client.api<JobListAnswer>(`/v1/jobs?${p}`);
        if (gen === generation.current && answer.counts) setCounts(answer.counts);
      } catch {
        // The next reading tries again; the list's own error says what is wrong.
      }
    }, COUNTS_MS);
    return () => clearInterval(timer);
  }, [key, client]);

  const loadMore = useCallback(() => {
    if (next && !loading) void read(JSON.parse(key) as Filters, next, generation.current);
  }, [next, loading, read, key]);

  return { jobs, counts, more: next !== null, loading, answered, error, loadMore };
}
