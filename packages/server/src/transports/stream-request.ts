/**
 * What an SSE stream request asks for (`GET /v1/stream`): the jobs and scope of
 * its query, the seq reached per job (the resume id of `Last-Event-ID` or
 * `?since=`), and the credential it carries.
 */
import { ErrorCode, JOB_ID } from '@headway/protocol';
import type { FastifyRequest } from 'fastify';
import { HeadwayError } from '../errors.js';
import { bearerToken, cookieValue, SESSION_COOKIE } from './credentials.js';

/** Cookie that may carry the credential (for pages that cannot put it in the URL): the session cookie. */
export const TOKEN_COOKIE = SESSION_COOKIE;

const QUERY_KEYS = new Set(['job', 'scope', 'since', 'token']);

/** What a stream asked for: jobs, a scope, and the seq reached per job. */
export interface StreamRequest {
  jobs: string[];
  scope: 'user' | 'all' | null;
  since: Map<string, number>;
}

/**
 * Parse a resume id (`Last-Event-ID` or `?since=`): `<jobId>:<seq>` entries joined
 * by commas. Throws `HW_ERR_INVALID_MESSAGE` on anything else.
 */
export function parseStreamId(text: string): Map<string, number> {
  const since = new Map<string, number>();
  if (text.trim() === '') return since;
  for (const entry of text.split(',')) {
    const colon = entry.lastIndexOf(':');
    const job = entry.slice(0, colon).trim();
    const seqText = entry.slice(colon + 1).trim();
    const seq = Number(seqText);
    if (colon < 1 || !JOB_ID.test(job) || !/^\d{1,15}$/.test(seqText)) {
      throw new HeadwayError(ErrorCode.INVALID_MESSAGE, 'resume id: expected "<jobId>:<seq>" entries');
    }
    since.set(job, seq);
  }
  return since;
}

/** Format a resume id from `[jobId, seq]` entries. */
export function formatStreamId(entries: Iterable<readonly [string, number]>): string {
  let text = '';
  for (const [job, seq] of entries) text += `${text === '' ? '' : ','}${job}:${seq}`;
  return text;
}

/** The credential of a stream request: `?token=`, then `Authorization: Bearer`, then the cookie. */
export function credentialOf(request: FastifyRequest): string | undefined {
  const query = new URL(request.url, 'http://localhost').searchParams.get('token');
  if (query) return query;
  const header = bearerToken(request.headers.authorization);
  if (header) return header;
  const cookie = cookieValue(request.headers.cookie, TOKEN_COOKIE);
  if (cookie === null) return undefined;
  try {
    return decodeURIComponent(cookie);
  } catch {
    return undefined;
  }
}

export function parseRequest(request: FastifyRequest, maxJobs: number): StreamRequest {
  const params = new URL(request.url, 'http://localhost').searchParams;
  const bad = (message: string) => new HeadwayError(ErrorCode.INVALID_MESSAGE, message);
  for (const key of params.keys()) if (!QUERY_KEYS.has(key)) throw bad(`unknown query parameter "${key}"`);
  const jobs = new Set<string>();
  for (const value of params.getAll('job')) {
    for (const job of value.split(',')) {
      if (!JOB_ID.test(job)) throw bad('job: 1–128 letters, digits or ._:-');
      jobs.add(job);
    }
  }
  if (jobs.size > maxJobs) throw bad(`at most ${maxJobs} jobs per stream`);
  const scopeParam = params.get('scope');
  if (scopeParam !== null && scopeParam !== 'user' && scopeParam !== 'all') {
    throw bad('scope: "user" or "all"');
  }
  const lastEventId = request.headers['last-event-id'];
  // EventSource reconnects to the URL it was opened with: its Last-Event-ID is newer than `since`.
  const resumeText = typeof lastEventId === 'string' ? lastEventId : (params.get('since') ?? '');
  return { jobs: [...jobs], scope: scopeParam, since: parseStreamId(resumeText) };
}
