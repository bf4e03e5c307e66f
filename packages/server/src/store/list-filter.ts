/**
 * The WHERE clause of `Store.listJobs`, shared by the SQL stores: each store
 * says how it binds a value and a list, and gets the same conditions in the
 * same order. The counts per status use the same conditions without the
 * status filter and the cursor.
 */
import type { Cursor } from './cursor.js';
import type { ListJobsQuery, ListOrder } from './store.js';

export interface SqlBinder {
  /** A placeholder bound to `value`. */
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
    const pattern = bind.value(likePattern(query.search));
    where.push(
      `(lower(id) LIKE ${pattern} ESCAPE '\\' OR lower(name) LIKE ${pattern} ESCAPE '\\'` +
        ` OR lower(owner) LIKE ${pattern} ESCAPE '\\')`,
    );
  }
  if (query.createdAfter !== undefined) where.push(`created_at >= ${bind.value(query.createdAfter)}`);
  if (query.createdBefore !== undefined) where.push(`created_at < ${bind.value(query.createdBefore)}`);
  if (query.updatedAfter !== undefined) where.push(`updated_at >= ${bind.value(query.updatedAfter)}`);
  if (query.updatedBefore !== undefined) where.push(`updated_at < ${bind.value(query.updatedBefore)}`);
  if (withStatus && after !== undefined) {
    const column = orderColumn(query.order);
    const at = bind.value(after.at);
    where.push(`(${column} < ${at} OR (${column} = ${at} AND ${bind.id} < ${bind.value(after.id)}))`);
  }
  return where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '';
}
