/**
 * `createClient`: the public face of the client, wiring its parts together:
 *
 * - connection.ts, the state machine over the transports (transport.ts);
 * - token.ts, the token and its refresh;
 * - subscriptions.ts, what the handles, collections and other tabs watch;
 * - job-sequencer.ts, every event once and in seq order, gaps filled;
 * - tab-sharing.ts, one connection for the tabs of an origin;
 * - rest.ts and control-requests.ts, the REST API and cancel/pause/resume.
 */
import type { JobEvent, JobState, ServerMessage } from '@headway/protocol';
import { JOB_ID } from '@headway/protocol/codes';
import type { ClientParts } from './client-parts.js';
import { createConnection } from './connection.js';
import { createControlRequests } from './control-requests.js';
import { Emitter } from './emitter.js';
import { HeadwayClientError } from './errors.js';
import type { Core, JobCollection, JobHandle } from './handles.js';
import { createJobSequencer } from './job-sequencer.js';
import { resolveOptions } from './options.js';
import { createRest } from './rest.js';
import { createSubscriptions } from './subscriptions.js';
import { createTabSharing } from './tab-sharing.js';
import { createTokenKeeper } from './token.js';
import type {
  ClientEvents,
  ClientOptions,
  ConnectionState,
  ControlAction,
  JobsOptions,
  TransportKind,
} from './types.js';

export { clientDefaults } from './options.js';

/** A connected (or connecting) Headway client. Create one with `createClient`. */
export interface HeadwayClient {
  readonly state: ConnectionState;
  /** The transport in use (the leader tab's, when the connection is shared); null when none. */
  readonly transport: TransportKind | null;
  /** The authenticated user (`welcome.user`); null before the first connection. */
  readonly user: string | null;
  /** Start connecting (done on its own by the first `job()` or `jobs()`). */
  connect(): void;
  /** Close the connection and stop reconnecting; `connect()` starts again. */
  close(): void;
  /** A live handle on one job. Each call returns a new handle: `close()` each. */
  job(id: string): JobHandle;
  /** A live collection of the user's jobs (or all jobs), new ones included. */
  jobs(options?: JobsOptions): JobCollection;
  /** Cancel, pause or resume a job; resolves with its state once the hub acknowledged. */
  control(id: string, action: ControlAction, reason?: string): Promise<JobState>;
  /** A page of a job's event log after `since`. */
  history(
    id: string,
    options?: { since?: number; limit?: number },
  ): Promise<{ events: JobEvent[]; next?: number }>;
  /** An authenticated REST call (`/v1/…`); rejects with a `HeadwayClientError` carrying the hub's code. */
  api<T = unknown>(path: string, init?: { method?: string; body?: unknown }): Promise<T>;
  on<K extends keyof ClientEvents>(type: K, listener: (ctx: ClientEvents[K]) => void): () => void;
  off<K extends keyof ClientEvents>(type: K, listener: (ctx: ClientEvents[K]) => void): void;
}

/**
 * Create a client. It connects on its own when the first job or collection is
 * watched, and stays connected until `close()`, whatever the network does.
 *
 * ```ts
 * const client = createClient({ url: 'https://hub.example.com', token: () => getToken() });
 * client.job('video-1').on('progress', ({ state }) => render(state.progress.percent));
 * ```
 */
export function createClient(options: ClientOptions): HeadwayClient {
  const events = new Emitter<ClientEvents>();
  const parts = {
    settings: resolveOptions(options),
    events,
    receive,
    report: (error) => events.emit('error', { error }),
  } as ClientParts;
  parts.tokens = createTokenKeeper(parts);
  const rest = (parts.rest = createRest(parts));
  const tabs = (parts.tabs = createTabSharing(parts));
  const subscriptions = (parts.subscriptions = createSubscriptions(parts));
  const sequencer = (parts.sequencer = createJobSequencer(parts));
  const requests = (parts.requests = createControlRequests(parts));
  const connection = (parts.connection = createConnection(parts));

  /** A message of the hub, from this tab's transport or relayed by the leading tab. */
  function receive(m: ServerMessage): void {
    tabs.relay(m);
    switch (m.type) {
      case 'event': {
        const { type: _type, state, ...event } = m;
        sequencer.ingest(event as JobEvent, state);
        return;
      }
      case 'subscribed': {
        const byJob = new Map<string, JobEvent[]>();
        for (const e of m.events) byJob.set(e.job, [...(byJob.get(e.job) ?? []), e]);
        for (const s of m.jobs) sequencer.absorb(s, byJob.get(s.id) ?? [], m.recovered);
        return;
      }
      case 'error': {
        const error = new HeadwayClientError(m.code, m.message);
        const id = m.id ?? '';
        if (!requests.answer(id, error)) subscriptions.fail(id, error);
        return;
      }
      case 'ack':
        requests.answer(m.id, m.job!);
    }
  }

  const core: Core = {
    state: (id) => sequencer.tracks.get(id)?.state ?? null,
    control: requests.control,
    release: subscriptions.release,
  };

  return {
    get state() {
      return connection.state;
    },
    get transport() {
      return connection.transport;
    },
    get user() {
      return connection.user;
    },
    connect: connection.connect,
    close: connection.close,
    job(id) {
      if (typeof id !== 'string' || !JOB_ID.test(id)) {
        throw new TypeError('client.job: the id must be 1–128 letters, digits or ._:-');
      }
      return subscriptions.watchJob(id, core);
    },
    jobs({ scope = 'user', limit = 1000 } = {}) {
      if (scope !== 'user' && scope !== 'all')
        throw new TypeError('client.jobs: scope must be "user" or "all"');
      if (!Number.isInteger(limit) || limit < 1)
        throw new TypeError('client.jobs: limit must be a positive integer');
      return subscriptions.watchScope(scope, limit, core);
    },
    control: requests.control,
    history: rest.history,
    api: rest.api,
    on: (type, listener) => events.on(type, listener),
    off: (type, listener) => events.off(type, listener),
  };
}
