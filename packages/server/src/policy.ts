import type { JobState } from '@headway/protocol';
import type { Principal } from './auth.js';

/**
 * Who may see and control which job. A job a principal may not see is reported
 * exactly like a job that does not exist, so ids of other users' jobs leak nothing.
 */

/** API keys (workers, back ends) and admin tokens see everything. */
export function isPrivileged(p: Principal): boolean {
  return p.kind === 'key' || p.admin;
}

export function canSee(p: Principal, job: Pick<JobState, 'id' | 'owner' | 'parent'>): boolean {
  if (p.kind === 'key' || p.admin) return true;
  if (p.jobs) return p.jobs.has(job.id) || (job.parent !== null && p.jobs.has(job.parent));
  return job.owner === p.user;
}

/** Browser tokens may cancel, pause and resume the jobs they can see. */
export const canControl = canSee;

/** Creating jobs, reporting events, deleting jobs and minting tokens need an API key. */
export function canReport(p: Principal): boolean {
  return p.kind === 'key';
}

/** The `all` scope needs an API key or an admin token. */
export function canWatchAll(p: Principal): boolean {
  return isPrivileged(p);
}

/** The user whose jobs the `user` scope covers. */
export function scopeUser(p: Principal): string | null {
  return p.kind === 'user' ? p.user : null;
}

/**
 * The user a connection counts under for the per-user connection limit, or null
 * for an API key: the limit protects the hub from one user's tabs and scripts,
 * while a key is a back end or a fleet of workers, trusted with any number.
 */
export function limitedUser(p: Principal): string | null {
  return p.kind === 'user' ? p.user : null;
}
