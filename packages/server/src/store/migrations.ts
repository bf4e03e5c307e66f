/**
 * The store schema as an ordered list of migrations, shared by every `Store`
 * implementation. Each migration carries one script per dialect; a store applies,
 * in one transaction each, the migrations whose version is above the highest one
 * recorded in `schema_migrations`.
 *
 * Conventions that keep the dialects interchangeable:
 * - timestamps are integers, milliseconds since the epoch (INTEGER / BIGINT), so
 *   that retention and paging compare numbers, never formatted strings;
 * - JSON documents are TEXT in SQLite and JSONB in PostgreSQL;
 * - a job's full state is one JSON document; the columns beside it are copies of
 *   the fields that queries filter or sort on.
 *
 * Migrations are append-only: never edit one that has shipped, add the next.
 */

export interface Migration {
  /** 1, 2, 3 … without gaps. */
  version: number;
  name: string;
  sqlite: string;
  postgres: string;
}

/** Bookkeeping table, created before any migration runs. */
export const MIGRATIONS_TABLE = {
  sqlite: `CREATE TABLE IF NOT EXISTS schema_migrations (
  version    INTEGER PRIMARY KEY,
  name       TEXT    NOT NULL,
  applied_at INTEGER NOT NULL
)`,
  postgres: `CREATE TABLE IF NOT EXISTS schema_migrations (
  version    INTEGER PRIMARY KEY,
  name       TEXT    NOT NULL,
  applied_at BIGINT  NOT NULL
)`,
} as const;

/** The outbox's indexes, the same in both dialects. */
const WEBHOOK_DELIVERY_INDEXES = `CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (webhook, job, seq) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_recent ON webhook_deliveries (webhook, updated_at);
CREATE INDEX webhook_deliveries_settled ON webhook_deliveries (updated_at) WHERE status <> 'pending';
`;

/** The list's indexes per filter, in its order (most recently updated first); the same in both dialects. */
const JOB_SEARCH_INDEXES = `DROP INDEX jobs_status;
CREATE INDEX jobs_status_updated ON jobs (status, updated_at, id);
CREATE INDEX jobs_kind_updated ON jobs (kind, updated_at, id) WHERE kind IS NOT NULL;
CREATE INDEX jobs_created ON jobs (created_at, id);
`;

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'initial',
    // Events and keys are WITHOUT ROWID so that they are clustered by (job, seq) and
    // (job, key): a resume reads one contiguous range instead of one lookup per row.
    sqlite: `
CREATE TABLE jobs (
  id          TEXT    PRIMARY KEY,
  owner       TEXT    NOT NULL,
  parent      TEXT,
  status      TEXT    NOT NULL,
  seq         INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  finished_at INTEGER,
  state       TEXT    NOT NULL
);
CREATE INDEX jobs_owner_updated ON jobs (owner, updated_at, id);
CREATE INDEX jobs_updated ON jobs (updated_at, id);
CREATE INDEX jobs_parent ON jobs (parent) WHERE parent IS NOT NULL;
CREATE INDEX jobs_status ON jobs (status);
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE events (
  job  TEXT    NOT NULL,
  seq  INTEGER NOT NULL,
  kind TEXT    NOT NULL,
  at   INTEGER NOT NULL,
  data TEXT    NOT NULL,
  PRIMARY KEY (job, seq)
) WITHOUT ROWID;
CREATE INDEX events_at ON events (at);

CREATE TABLE idempotency_keys (
  job TEXT    NOT NULL,
  key TEXT    NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (job, key)
) WITHOUT ROWID;

CREATE TABLE tombstones (
  id         TEXT    PRIMARY KEY,
  deleted_at INTEGER NOT NULL
);
CREATE INDEX tombstones_deleted ON tombstones (deleted_at);
`,
    postgres: `
CREATE TABLE jobs (
  id          TEXT    PRIMARY KEY,
  owner       TEXT    NOT NULL,
  parent      TEXT,
  status      TEXT    NOT NULL,
  seq         BIGINT  NOT NULL,
  updated_at  BIGINT  NOT NULL,
  finished_at BIGINT,
  state       JSONB   NOT NULL
);
CREATE INDEX jobs_owner_updated ON jobs (owner, updated_at, id);
CREATE INDEX jobs_updated ON jobs (updated_at, id);
CREATE INDEX jobs_parent ON jobs (parent) WHERE parent IS NOT NULL;
CREATE INDEX jobs_status ON jobs (status);
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE events (
  job  TEXT    NOT NULL,
  seq  BIGINT  NOT NULL,
  kind TEXT    NOT NULL,
  at   BIGINT  NOT NULL,
  data JSONB   NOT NULL,
  PRIMARY KEY (job, seq)
);
CREATE INDEX events_at ON events (at);

CREATE TABLE idempotency_keys (
  job TEXT    NOT NULL,
  key TEXT    NOT NULL,
  seq BIGINT  NOT NULL,
  PRIMARY KEY (job, key)
);

CREATE TABLE tombstones (
  id         TEXT    PRIMARY KEY,
  deleted_at BIGINT  NOT NULL
);
CREATE INDEX tombstones_deleted ON tombstones (deleted_at);
`,
  },
  {
    version: 2,
    name: 'webhooks',
    // The outbox: one row per (webhook, event) written by the commit of the event.
    // `lease_until` and `lease_owner` make a claim a lease, so a process that dies
    // mid-attempt leaves the delivery to another once the lease ends. The partial
    // indexes cover only pending rows, which is all the dispatcher reads.
    sqlite: `
CREATE TABLE webhooks (
  id              TEXT    PRIMARY KEY,
  url             TEXT    NOT NULL,
  events          TEXT    NOT NULL,
  owner           TEXT,
  job_kind        TEXT,
  secret          TEXT    NOT NULL,
  previous_secret TEXT,
  previous_until  INTEGER,
  created_at      INTEGER NOT NULL
);

CREATE TABLE webhook_deliveries (
  id               TEXT    PRIMARY KEY,
  webhook          TEXT    NOT NULL,
  job              TEXT    NOT NULL,
  seq              INTEGER NOT NULL,
  kind             TEXT    NOT NULL,
  at               INTEGER NOT NULL,
  data             TEXT    NOT NULL,
  state            TEXT    NOT NULL,
  status           TEXT    NOT NULL,
  attempts         INTEGER NOT NULL,
  next_at          INTEGER NOT NULL,
  lease_until      INTEGER NOT NULL,
  lease_owner      TEXT,
  updated_at       INTEGER NOT NULL,
  last_attempt_at  INTEGER,
  last_code        INTEGER,
  last_error       TEXT,
  last_duration_ms INTEGER
);
${WEBHOOK_DELIVERY_INDEXES}`,
    postgres: `
CREATE TABLE webhooks (
  id              TEXT    PRIMARY KEY,
  url             TEXT    NOT NULL,
  events          TEXT[]  NOT NULL,
  owner           TEXT,
  job_kind        TEXT,
  secret          TEXT    NOT NULL,
  previous_secret TEXT,
  previous_until  BIGINT,
  created_at      BIGINT  NOT NULL
);

CREATE TABLE webhook_deliveries (
  id               TEXT    PRIMARY KEY,
  webhook          TEXT    NOT NULL,
  job              TEXT    NOT NULL,
  seq              BIGINT  NOT NULL,
  kind             TEXT    NOT NULL,
  at               BIGINT  NOT NULL,
  data             JSONB   NOT NULL,
  state            JSONB   NOT NULL,
  status           TEXT    NOT NULL,
  attempts         INTEGER NOT NULL,
  next_at          BIGINT  NOT NULL,
  lease_until      BIGINT  NOT NULL,
  lease_owner      TEXT,
  updated_at       BIGINT  NOT NULL,
  last_attempt_at  BIGINT,
  last_code        INTEGER,
  last_error       TEXT,
  last_duration_ms INTEGER
);
${WEBHOOK_DELIVERY_INDEXES}`,
  },
  {
    version: 3,
    name: 'kind_summaries',
    // One small JSON document per job kind (what finished jobs of the kind took),
    // updated with an optimistic `version` check so that processes sharing the
    // database never lose each other's updates.
    sqlite: `
CREATE TABLE kind_summaries (
  kind       TEXT    PRIMARY KEY,
  version    INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  summary    TEXT    NOT NULL
);
`,
    postgres: `
CREATE TABLE kind_summaries (
  kind       TEXT    PRIMARY KEY,
  version    BIGINT  NOT NULL,
  updated_at BIGINT  NOT NULL,
  summary    JSONB   NOT NULL
);
`,
  },
  {
    version: 4,
    name: 'job-search',
    // The list's search and filters: name, kind and creation time as columns beside
    // the state (filled from it for the jobs already stored), and an index per
    // filter in the list's order (most recently updated first), so that a filtered
    // page is read in index order and stops after `limit` rows. The search by a
    // part of an id, name or owner scans in that order too.
    sqlite: `
ALTER TABLE jobs ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN kind TEXT;
ALTER TABLE jobs ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET
  name = COALESCE(json_extract(state, '$.name'), ''),
  kind = json_extract(state, '$.kind'),
  created_at = CAST(ROUND((julianday(json_extract(state, '$.createdAt')) - 2440587.5) * 86400000) AS INTEGER);
${JOB_SEARCH_INDEXES}`,
    postgres: `
ALTER TABLE jobs
  ADD COLUMN name TEXT NOT NULL DEFAULT '',
  ADD COLUMN kind TEXT,
  ADD COLUMN created_at BIGINT NOT NULL DEFAULT 0;
UPDATE jobs SET
  name = COALESCE(state->>'name', ''),
  kind = state->>'kind',
  created_at = (EXTRACT(EPOCH FROM (state->>'createdAt')::timestamptz) * 1000)::bigint;
${JOB_SEARCH_INDEXES}`,
  },
  {
    version: 5,
    name: 'event-log',
    // SQLite only: the embedded store's commits append here, in the order of
    // writing, and later move events into `events` many of a job at once (see
    // store/sqlite-log.ts). The last row of a write carries the job's new stored
    // state in `doc`: whole when `base` is null, else the fields that changed
    // since the state at seq `base`.
    sqlite: `
CREATE TABLE event_log (
  id   INTEGER PRIMARY KEY,
  job  TEXT    NOT NULL,
  seq  INTEGER NOT NULL,
  kind TEXT    NOT NULL,
  at   INTEGER NOT NULL,
  data TEXT    NOT NULL,
  base INTEGER,
  doc  TEXT
);
`,
    // PostgreSQL's group commit writes each event in its place already.
    postgres: '',
  },
];

/** Highest schema version this build knows. */
export const LATEST_VERSION = migrations.reduce((max, m) => Math.max(max, m.version), 0);
