/**
 * The embedded store's job list: a page of jobs by the list's filters, in its
 * order, with counts per status when asked. A statement's text depends on which
 * filters a query uses, so each shape is prepared once and kept (the most recent
 * `LIST_STATEMENTS` of them).
 */
import type { JobStatus } from '@headway/protocol';
import type Database from 'better-sqlite3';
import { BoundedMap } from '../bounded-map.js';
import { decodeCursor, pageLimit, pageOf } from './cursor.js';
import { listConditions, orderColumn, type SqlBinder } from './list-filter.js';
import { jobOfRow, statusCounts } from './rows.js';
import type { ListRow } from './sqlite-sql.js';
import type { ListJobsPage, ListJobsQuery } from './store.js';

/** Shapes of list statements kept prepared. */
const LIST_STATEMENTS = 64;

/** Binds values positionally (`?`) and lists as one JSON parameter (`json_each`). */
function sqliteBinder(params: unknown[]): SqlBinder {
  return {
    value(value) {
      params.push(value);
      return '?';
    },
    oneOf(column, values) {
      params.push(JSON.stringify(values));
      return `${column} IN (SELECT value FROM json_each(?))`;
    },
    id: 'id',
  };
}

export class SqliteJobList {
  private readonly statements = new BoundedMap<string, Database.Statement>(LIST_STATEMENTS);

  constructor(private readonly db: Database.Database) {}

  /** The page of `query`, read from the rows in `jobs` as they are. */
  page(query: ListJobsQuery): ListJobsPage {
    const limit = pageLimit(query.limit);
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
    const column = orderColumn(query.order);
    const params: unknown[] = [];
    const where = listConditions(query, after, sqliteBinder(params));
    const rows = this.statement(
      `SELECT id, ${column} AS at, state FROM jobs${where} ORDER BY ${column} DESC, id DESC LIMIT ?`,
    ).all(...params, limit + 1) as ListRow[];
    const page = pageOf(
      rows,
      limit,
      (r) => jobOfRow(r.state),
      (r) => ({ at: r.at, id: r.id }),
    );
    if (query.counts) {
      const countParams: unknown[] = [];
      const countWhere = listConditions(query, undefined, sqliteBinder(countParams), false);
      const counted = this.statement(
        `SELECT status, COUNT(*) AS n FROM jobs${countWhere} GROUP BY status`,
      ).all(...countParams) as { status: JobStatus; n: number }[];
      page.counts = statusCounts(counted);
    }
    return page;
  }

  /** A prepared statement of the list's, kept for the next query of the same shape. */
  private statement(sql: string): Database.Statement {
    let stmt = this.statements.get(sql);
    if (stmt === undefined) {
      stmt = this.db.prepare(sql);
      this.statements.set(sql, stmt);
    }
    return stmt;
  }
}
