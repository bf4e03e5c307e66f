/**
 * user-progress (seed 0, a FastAPI `ConnectionManager`): `GET /ws/{user_id}`
 * upgraded to a WebSocket that pushes `{stage, progress, eta_seconds}` whenever
 * one of the user's jobs changes. The client sends nothing but keep-alive texts,
 * which are accepted and ignored.
 *
 * The browser client connects bare, so the credential is the session cookie (or
 * `?token=`); it must belong to `user_id` (an API key or admin token may watch
 * any user). A missing, invalid or foreign credential closes with 1008.
 */
import { type EventKind, type JobState, TERMINAL_STATUSES } from '@headway/protocol';
import type { Delivery } from '../../delivery.js';
import { canSee, isPrivileged } from '../../policy.js';
import { DialectClose, DialectConnection } from './base.js';
import { etaSeconds, stageName, UNSHOWN_KINDS, wholePercent } from './fields.js';
import type { Dialect, DialectEnv } from './index.js';

/** The seed's message; `job_id`, `status` and `error` are additions its client ignores. */
export interface UserProgressMessage {
  /** The current stage; the outcome (`completed`, `failed`, `cancelled`) once the job ended; the status before the first stage. */
  stage: string;
  /** Whole percent 0–100. */
  progress: number;
  /** Whole seconds remaining, or null while there is no estimate. */
  eta_seconds: number | null;
  job_id: string;
  status: JobState['status'];
  /** The failure's message, on a failed job. */
  error?: string;
}

/** Kinds that change nothing the seed shows: it shows neither metadata nor deletions. */
const SILENT: ReadonlySet<EventKind> = new Set([...UNSHOWN_KINDS, 'metadata', 'deleted']);

export function userProgressMessage(state: JobState): UserProgressMessage {
  const ended = TERMINAL_STATUSES.includes(state.status);
  const message: UserProgressMessage = {
    stage: ended ? state.status : stageName(state),
    progress: wholePercent(state.progress.percent),
    eta_seconds: etaSeconds(state),
    job_id: state.id,
    status: state.status,
  };
  if (state.error !== null) message.error = state.error.message;
  return message;
}

function encode(d: Delivery): string | null {
  return SILENT.has(d.kind) ? null : JSON.stringify(userProgressMessage(d.state));
}

class UserProgressConnection extends DialectConnection {
  async start(): Promise<void> {
    const user = this.upgrade.params.user_id!;
    const principal = await this.upgradePrincipalOrNull();
    if (
      principal === null ||
      !(isPrivileged(principal) || (principal.kind === 'user' && principal.user === user))
    ) {
      this.close(DialectClose.POLICY_VIOLATION, 'invalid credentials for this user');
      return;
    }
    if (!(await this.admitUser(principal))) {
      this.close(DialectClose.TRY_AGAIN_LATER, 'too many connections for this user');
      return;
    }
    this.principal = principal;
    await this.subscribeUser(user, (s) => canSee(principal, s), userProgressMessage);
  }

  protected override accepts(delivery: Delivery): boolean {
    // A token limited to some jobs sees only those.
    return canSee(this.principal!, delivery.state);
  }
}

export function userProgress(_env: DialectEnv): Dialect {
  return { endpoint: { path: '/ws/:user_id', encode, connect: (init) => new UserProgressConnection(init) } };
}
