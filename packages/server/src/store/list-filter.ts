/**
 * The WHERE clause of `Store.listJobs`, shared by the SQL stores: each store
 * says how it binds a value and a list, and gets the same conditions in the
 * same order. The counts per status use the same conditions without the
 * status filter and the cursor.
 */
import type { Cursor } from './cursor.js';
import type { ListJobsQuery, ListOrder } from './store.js';

export interface SqlBinder {
  /** A placeholder bound to `value`, for one use (SQLite's `?` are positional). */
  value(value: unknown): string;
  /** A condition that `column` is one of `values`. */
  oneOf(column: string, values: readonly string[]): string;
  /** `id` compared byte by byte (PostgreSQL's default collation would not). */
  id: string;
}

/** The column a page is ordered by. */
export function orderColumn(order: ListOrder | undefined): 'updated_at' | 'created_at' {
  return order === 'created' ? 'created_at' : 'updated_at';
}

/** `%`, `_` and `\` match themselves in a LIKE pattern with `ESCAPE '\'`. */
function likePattern(text: string): string {
  return `%${text.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/**
 * The conditions of the query, joined with AND (or `''` for none).
 * `withStatus: false` leaves out the status filter and the cursor, for the counts.
 */
export function listConditions(
  query: ListJobsQuery,
  after: Cursor | undefined,
  bind: SqlBinder,
  withStatus = true,
): string {
  const where: string[] = [];
  if (query.owner !== undefined) where.push(`owner = ${bind.value(query.owner)}`);
  if (withStatus && query.status !== undefined) where.push(bind.oneOf('status', query.status));
  if (query.parent !== undefined) where.push(`parent = ${bind.value(query.parent)}`);
  if (query.ids !== undefined) where.push(bind.oneOf('id', query.ids));
  if (query.kind !== undefined) where.push(`kind = ${bind.value(query.kind)}`);
  if (query.search !== undefined && query.search !== '') {
    const pattern = likePattern(query.search);
    const like = (column: string) => `lower(${column}) LIKE ${bind.value(pattern)} ESCAPE '\\'`;
    where.push(`(${like('id')} OR ${like('name')} OR ${like('owner')})`);
  }
  if (query.createdAfter !== undefined) where.push(`created_at >= ${bind.value(query.createdAfter)}`);
  if (query.createdBefore !== undefined) where.push(`created_at < ${bind.value(query.createdBefore)}`);
  if (query.updatedAfter !== undefined) where.push(`updated_at >= ${bind.value(query.updatedAfter)}`);
  if (query.updatedBefore !== undefined) where.push(`updated_at < ${bind.value(query.updatedBefore)}`);
  if (withStatus && after !== undefined) {
    const column = orderColumn(query.order);
    const before = `${column} < ${bind.value(after.at)}`;
    const tie = `${column} = ${bind.value(after.at)} AND ${bind.id} < ${bind.value(after.id)}`;
    where.push(`(${before} OR (${tie}))`);
  }
  return where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '';
}
