/**
 * Paging of `Store.listJobs` in the SQL stores: pages are ordered by `updatedAt`
 * (or `createdAt`) descending, then id descending, and a page's `next` cursor is
 * the position of its last job in that order.
 */
import { ErrorCode, type JobState } from '@headway/protocol';
import { HeadwayError } from '../errors.js';
import type { ListJobsPage } from './store.js';

/** Most jobs in one page. */
export const MAX_PAGE = 500;

/** Where a page ends: the last job's time in the page order (ms since epoch) and id. */
export interface Cursor {
  at: number;
  id: string;
}

/** A page size within 1–`MAX_PAGE`; anything that is not a number counts as 1. */
export function pageLimit(limit: number): number {
  return Math.min(MAX_PAGE, Math.max(1, Math.floor(limit) || 1));
}

/** The opaque cursor of a position: base64url of `[at, id]`. */
export function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify([c.at, c.id])).toString('base64url');
}

/**
 * The position of a cursor made by `encodeCursor`.
 * @throws HeadwayError `HW_ERR_INVALID_VALUE` for anything else.
 */
export function decodeCursor(cursor: string): Cursor {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(v) && v.length === 2 && Number.isSafeInteger(v[0]) && typeof v[1] === 'string') {
      return { at: v[0], id: v[1] };
    }
  } catch {
    // Falls through to the error below.
  }
  throw new HeadwayError(ErrorCode.INVALID_VALUE, 'invalid cursor');
}

/**
 * The page of a query that read up to `limit + 1` rows in page order: the first
 * `limit` jobs, and the cursor after the last of them when a row was left over.
 */
export function pageOf<R>(
  rows: readonly R[],
  limit: number,
  jobOf: (row: R) => JobState,
  positionOf: (row: R) => Cursor,
): ListJobsPage {
  const page: ListJobsPage = { jobs: rows.slice(0, limit).map(jobOf) };
  if (rows.length > limit) page.next = encodeCursor(positionOf(rows[limit - 1]));
  return page;
}
