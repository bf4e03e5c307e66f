import type {
  ConnectionState,
  HeadwayClient,
  HeadwayClientError,
  JobState,
  JobStatus,
  Scope,
  TransportKind,
} from '@headway/client';
import {
  createContext,
  createElement,
  type ReactNode,
  useContext,
  useMemo,
  useSyncExternalStore,
} from 'react';
import { cancelFrame, nextFrame } from './frame.js';

/** Codes of the errors `@headway/react` raises itself (see docs/errors.md). */
export const ReactErrorCode = {
  /** A hook was used outside `<HeadwayProvider client={…}>`. */
  NO_PROVIDER: 'HW_ERR_NO_PROVIDER',
} as const;
export type ReactErrorCode = (typeof ReactErrorCode)[keyof typeof ReactErrorCode];

const HeadwayContext = createContext<HeadwayClient | null>(null);

export interface HeadwayProviderProps {
  client: HeadwayClient;
  children?: ReactNode;
}

/** Makes a client available to the hooks and components below it. */
export function HeadwayProvider({ client, children }: HeadwayProviderProps) {
  return createElement(HeadwayContext.Provider, { value: client }, children);
}

/** The client of the nearest `HeadwayProvider`. */
export function useClient(): HeadwayClient {
  const client = useContext(HeadwayContext);
  if (!client) {
    throw Object.assign(new Error('Headway hooks must be used inside <HeadwayProvider client={…}>'), {
      code: ReactErrorCode.NO_PROVIDER,
    });
  }
  return client;
}

export interface JobSnapshot {
  /** The job's state; null until the hub sent it (and during server rendering). */
  job: JobState | null;
  connection: ConnectionState;
  /** Why the job could not be watched (`HW_ERR_NOT_FOUND` …), if it could not. */
  error: HeadwayClientError | null;
}

export interface JobsSnapshot {
  /** Jobs of the scope, newest first, filtered by status when asked. */
  jobs: JobState[];
  connection: ConnectionState;
  error: HeadwayClientError | null;
}

export interface ConnectionSnapshot {
  state: ConnectionState;
  transport: TransportKind | null;
}

export interface UseJobsOptions {
  /** Default `user`. */
  scope?: Scope;
  /** Only jobs in this status (or these statuses). */
  status?: JobStatus | readonly JobStatus[];
}

const SERVER_JOB: JobSnapshot = { job: null, connection: 'idle', error: null };
const SERVER_JOBS: JobsSnapshot = { jobs: [], connection: 'idle', error: null };
const SERVER_CONNECTION: ConnectionSnapshot = { state: 'idle', transport: null };

interface Store<T> {
  subscribe(notify: () => void): () => void;
  get(): T;
}

/**
 * A store for `useSyncExternalStore`: it starts watching on subscribe (never
 * during render, so server rendering and StrictMode's double renders create
 * nothing), recomputes its snapshot at most once per frame, and keeps the same
 * snapshot object while nothing changed.
 */
function store<T extends object, W>(
  open: () => { source: W; listen: (update: () => void) => (() => void)[]; close?: () => void },
  read: (source: W | null, previous: T) => T,
  initial: T,
): Store<T> {
  let snapshot = initial;
  let source: W | null = null;
  return {
    get: () => snapshot,
    subscribe(notify) {
      const opened = open();
      source = opened.source;
      const flush = () => {
        const next = read(source, snapshot);
        if (next !== snapshot) {
          snapshot = next;
          notify();
        }
      };
      const offs = opened.listen(() => nextFrame(flush));
      // Whatever is known already shows at once (React re-reads the snapshot after subscribing).
      snapshot = read(source, snapshot);
      return () => {
        for (const off of offs) off();
        cancelFrame(flush);
        opened.close?.();
        source = null;
      };
    },
  };
}

/**
 * Watch one job: `{job, connection, error}`, updated at most once per animation
 * frame. `id` may be null to watch nothing (yet).
 */
export function useJob(id: string | null | undefined): JobSnapshot {
  const client = useClient();
  const s = useMemo(
    () =>
      store<JobSnapshot, ReturnType<HeadwayClient['job']> | null>(
        () => {
          const handle = id ? client.job(id) : null;
          return {
            source: handle,
            listen: (update) => [
              client.on('state', update),
              ...(handle ? [handle.on('change', update), handle.on('error', update)] : []),
            ],
            close: () => handle?.close(),
          };
        },
        (handle, prev) => {
          const job = handle?.state ?? null;
          const error = handle?.error ?? null;
          const connection = client.state;
          return job === prev.job && error === prev.error && connection === prev.connection
            ? prev
            : { job, connection, error };
        },
        { job: null, connection: client.state, error: null },
      ),
    [client, id],
  );
  return useSyncExternalStore(s.subscribe, s.get, () => SERVER_JOB);
}

/** Watch the jobs of a scope, new ones included: `{jobs, connection, error}`, newest first. */
export function useJobs(options: UseJobsOptions = {}): JobsSnapshot {
  const client = useClient();
  const scope = options.scope ?? 'user';
  const statusKey = typeof options.status === 'string' ? options.status : (options.status ?? []).join();
  const s = useMemo(() => {
    const statuses = statusKey ? new Set(statusKey.split(',')) : null;
    type Source = { collection: ReturnType<HeadwayClient['jobs']>; error: HeadwayClientError | null };
    return store<JobsSnapshot, Source>(
      () => {
        const source: Source = { collection: client.jobs({ scope }), error: null };
        return {
          source,
          listen: (update) => [
            client.on('state', update),
            source.collection.on('change', update),
            source.collection.on('remove', update),
            source.collection.on('error', ({ error }) => {
              source.error = error;
              update();
            }),
          ],
          close: () => source.collection.close(),
        };
      },
      (source, prev) => {
        const jobs = (source?.collection.list() ?? []).filter((j) => !statuses || statuses.has(j.status));
        const connection = client.state;
        const error = source?.error ?? null;
        const same =
          connection === prev.connection &&
          error === prev.error &&
          jobs.length === prev.jobs.length &&
          jobs.every((job, i) => job === prev.jobs[i]);
        return same ? prev : { jobs, connection, error };
      },
      { jobs: [], connection: client.state, error: null },
    );
  }, [client, scope, statusKey]);
  return useSyncExternalStore(s.subscribe, s.get, () => SERVER_JOBS);
}

/** The connection's state and transport, for an indicator. */
export function useConnection(): ConnectionSnapshot {
  const client = useClient();
  const s = useMemo(
    () =>
      store<ConnectionSnapshot, HeadwayClient>(
        () => ({
          source: client,
          listen: (update) => [client.on('state', update), client.on('transport', update)],
        }),
        (c, prev) => {
          const state = c?.state ?? prev.state;
          const transport = c?.transport ?? null;
          return state === prev.state && transport === prev.transport ? prev : { state, transport };
        },
        { state: client.state, transport: client.transport },
      ),
    [client],
  );
  return useSyncExternalStore(s.subscribe, s.get, () => SERVER_CONNECTION);
}
