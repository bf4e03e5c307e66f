/**
 * What the dialects' WebSocket connections share beyond what every connection
 * does (`SocketConnection`): the standard close codes that the seeds' clients
 * know, deliveries encoded once per dialect (`Delivery.encode`), the credential
 * of the upgrade, and where a user-wide connection starts from.
 *
 * A dialect connection only translates: it listens on hub topics, turns job
 * states and events into the seed's messages, and answers the seed's requests.
 */
import { ErrorCode, type JobState } from '@headway/protocol';
import type { FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type { Principal } from '../../auth.js';
import type { Delivery } from '../../delivery.js';
import { HeadwayError } from '../../errors.js';
import type { DialectName } from '../../options.js';
import { limitedUser } from '../../policy.js';
import type { CloseCodes } from '../close-situations.js';
import { type Snapshot, SocketConnection } from '../socket-connection.js';
import type { SocketEndpoint, SocketServer, Upgrade } from '../socket-server.js';

export type { Snapshot } from '../socket-connection.js';

/**
 * Close codes of the dialect endpoints. The seeds' clients know only the
 * standard codes (one of them reconnects on anything but 1000), so the dialects
 * use nothing else.
 */
export const DialectClose = {
  /** The conversation is over: the job ended (job-stream) or does not exist. */
  NORMAL: 1000,
  /** The hub is shutting down; reconnect. */
  GOING_AWAY: 1001,
  /** Missing, invalid or expired credentials, or abuse. */
  POLICY_VIOLATION: 1008,
  /** An unexpected server error; reconnect. */
  INTERNAL_ERROR: 1011,
  /** Too many connections, or too far behind: reconnect later. */
  TRY_AGAIN_LATER: 1013,
} as const;

const violation = DialectClose.POLICY_VIOLATION;
/** Abuse and credentials close with 1008; what the client may retry, with 1001, 1011 or 1013. */
const CLOSE_CODES: CloseCodes = {
  slowReader: DialectClose.TRY_AGAIN_LATER,
  shutdown: DialectClose.GOING_AWAY,
  internalError: DialectClose.INTERNAL_ERROR,
  tokenExpired: violation,
  authTimeout: violation,
  flood: violation,
  invalidMessages: violation,
};

/** The WebSocket endpoint of a dialect. */
export interface DialectEndpoint {
  /** Path template without the prefix; `:name` matches one non-empty segment, e.g. `/ws/:user_id`. */
  path: string;
  /** The dialect's message for a delivery, or null when it has none (encoded once for all connections). */
  encode(delivery: Delivery): string | null;
  /** Checked before the upgrade: an HTTP status to refuse it with (429), or null. */
  admit?(upgrade: Upgrade): number | null;
  connect(init: DialectInit): DialectConnection;
}

/** What a dialect connection is made from. */
export interface DialectInit {
  server: SocketServer;
  ws: WebSocket;
  upgrade: Upgrade;
  dialect: DialectName;
  encode: DialectEndpoint['encode'];
}

/** What a dialect's GET route receives: path parameters and query values, as strings. */
export interface DialectRouteTypes {
  Params: Record<string, string>;
  Querystring: Record<string, string | undefined>;
}

export type DialectRequest = FastifyRequest<DialectRouteTypes>;

/** A GET route of a dialect (a polling fallback, a history); the answer is sent as JSON. */
export type DialectRoute = (request: DialectRequest) => Promise<unknown>;

/** A dialect's endpoint on the hub's socket server, under the dialects' path prefix. */
export function socketEndpoint(
  prefix: string,
  dialect: DialectName,
  endpoint: DialectEndpoint,
): SocketEndpoint {
  const { encode } = endpoint;
  return {
    transport: dialect,
    path: `${prefix}${endpoint.path}`,
    admit: endpoint.admit,
    connect: (server, ws, upgrade) => endpoint.connect({ server, ws, upgrade, dialect, encode }),
  };
}

/** Most jobs a user-wide connection starts with: the active ones. */
const SNAPSHOT_JOBS = 100;
/** Recently updated jobs looked at for ones that changed while a connection was set up. */
const SNAPSHOT_RECENT_JOBS = 20;
/** Clock difference between hub processes allowed for in "changed since the socket opened", ms. */
const SNAPSHOT_SLACK_MS = 1_000; // 1 second

/** One client connection of a dialect; subclasses start in `start` and translate. */
export abstract class DialectConnection extends SocketConnection {
  readonly dialect: DialectName;

  constructor({ server, ws, upgrade, dialect, encode }: DialectInit) {
    super(server, ws, upgrade, dialect, CLOSE_CODES, (d) => d.encode(dialect, encode));
    this.dialect = dialect;
  }

  /**
   * What a client watching all of a user's jobs starts from: the active ones, and
   * those that changed since the socket opened, so that a job that ended while
   * the connection was being set up is not missed. Most recently updated first.
   */
  protected async userJobs(owner: string): Promise<JobState[]> {
    const hub = this.ctx.hub;
    const [active, recent] = await Promise.all([
      hub.snapshotJobs({ owner, status: ['queued', 'running', 'paused'], limit: SNAPSHOT_JOBS }),
      hub.snapshotJobs({ owner, limit: SNAPSHOT_RECENT_JOBS }),
    ]);
    const since = this.openedAt - SNAPSHOT_SLACK_MS;
    const jobs = new Map<string, JobState>();
    for (const s of recent.jobs) if (Date.parse(s.updatedAt) >= since) jobs.set(s.id, s);
    for (const s of active.jobs) if (jobs.size < SNAPSHOT_JOBS) jobs.set(s.id, s);
    return [...jobs.values()];
  }

  /**
   * Subscribe to all of a user's jobs, starting from `userJobs`: one `frame` for
   * each of them that `keep` accepts.
   */
  protected async subscribeUser(
    user: string,
    keep: (state: JobState) => boolean,
    frame: (state: JobState) => unknown,
  ): Promise<void> {
    await this.subscribeWithSnapshot({ user }, async (): Promise<Snapshot> => {
      const jobs = (await this.userJobs(user)).filter(keep);
      return { frames: jobs.map((s) => frame(s)), seen: jobs.map((s) => [s.id, s.seq] as const) };
    });
  }

  // -------------------------------------------------------------------------
  // Credentials and limits

  /**
   * Verify a credential: a browser token or API key, or (from the cookie) a
   * browser token only.
   * @throws HeadwayError UNAUTHORIZED or TOKEN_EXPIRED.
   */
  protected async verify(credential: string, fromCookie: boolean): Promise<Principal> {
    try {
      return fromCookie
        ? await this.ctx.auth.verifyToken(credential)
        : await this.ctx.auth.authenticate(credential);
    } catch (err) {
      const code = err instanceof HeadwayError ? err.code : ErrorCode.UNAUTHORIZED;
      this.ctx.metrics.clientErrors.inc({ code });
      throw err instanceof HeadwayError ? err : new HeadwayError(code, 'invalid credentials');
    }
  }

  /** The `?token=` credential, else the session cookie's; null when there is neither. */
  protected async upgradePrincipal(): Promise<Principal | null> {
    if (this.upgrade.token !== null) return this.verify(this.upgrade.token, false);
    if (this.upgrade.cookie !== null) return this.verify(this.upgrade.cookie, true);
    return null;
  }

  /** `upgradePrincipal`, with a credential that does not verify taken as none. */
  protected async upgradePrincipalOrNull(): Promise<Principal | null> {
    try {
      return await this.upgradePrincipal();
    } catch (err) {
      if (!(err instanceof HeadwayError)) throw err;
      return null;
    }
  }

  /**
   * Count the connection against the user's limit (all transports); false at the
   * limit. An API key is not counted, as on the native transports: it is a back end,
   * and counting it under its `key:…` id would share a counter with a user of that name.
   */
  protected admitUser(p: Principal): Promise<boolean> {
    const user = limitedUser(p);
    return user === null ? Promise.resolve(true) : this.admit(this.ctx.connections, user);
  }

  /** Count an anonymous connection against its IP address's limit; false at the limit. */
  protected admitAnonymous(): Promise<boolean> {
    return this.admit(this.server.anonymous, this.upgrade.ip);
  }
}
