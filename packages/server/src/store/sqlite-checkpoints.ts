/**
 * WAL checkpoints off the event loop.
 *
 * In WAL mode SQLite copies the log back into the database file once it has
 * grown past `wal_autocheckpoint` pages, inside whichever commit crossed the
 * line, and with `synchronous = NORMAL` that checkpoint syncs both files: on
 * this kind of disk, a commit that usually takes a millisecond then takes 50
 * to 100, and every delivery waits behind it. So the store's own connection
 * leaves checkpoints to a worker thread with a connection of its own, which
 * runs a PASSIVE checkpoint (it never blocks a writer) every
 * `CHECKPOINT_EVERY_MS` after a commit. The connection's own automatic
 * checkpoint stays as a backstop, at `BACKSTOP_PAGES`, for a worker that falls
 * behind or fails to start.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';

/** How often the worker checkpoints while commits arrive, ms. */
export const CHECKPOINT_EVERY_MS = 250;
/** WAL pages at which the store's own connection checkpoints anyway. */
const BACKSTOP_PAGES = 16_384;
/** SQLite's own automatic checkpoint, for a connection whose worker failed. */
const SQLITE_DEFAULT_PAGES = 1000;

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path, { fileMustExist: true });
db.pragma('busy_timeout = 5000');
parentPort.on('message', (message) => {
  if (message === 'close') {
    db.close();
    parentPort.close();
    return;
  }
  let done = false;
  try {
    const [result] = db.pragma('wal_checkpoint(PASSIVE)');
    done = result.busy === 0;
  } catch {
    // The next checkpoint, or the backstop, copies what this one could not.
  }
  parentPort.postMessage(done);
});
`;

export class BackgroundCheckpoints {
  /** Checkpoints the worker completed. */
  completed = 0;
  private readonly worker: Worker;
  private readonly timer: NodeJS.Timeout;
  private wrote = false;
  private running = false;
  /** Callers of `exclusive` under way: no checkpoint starts meanwhile. */
  private held = 0;
  /** Settles when the checkpoint under way has ended. */
  private idle: Promise<void> = Promise.resolve();
  private settle: () => void = () => {};
  private readonly exited: Promise<void>;

  /** Checkpoints for `db`, the store's connection to the file at `path`. */
  constructor(db: Database.Database, path: string, everyMs = CHECKPOINT_EVERY_MS) {
    db.pragma(`wal_autocheckpoint = ${BACKSTOP_PAGES}`);
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(WORKER, { eval: true, workerData: { path, driver } });
    this.exited = new Promise((resolve) =>
      this.worker.once('exit', () => {
        this.ended();
        resolve();
      }),
    );
    this.worker.on('message', (done: boolean) => {
      this.ended();
      if (done) this.completed++;
    });
    this.worker.once('error', () => {
      clearInterval(this.timer);
      this.ended();
      // Without the worker, the store's connection checkpoints as SQLite does by default.
      if (db.open) db.pragma(`wal_autocheckpoint = ${SQLITE_DEFAULT_PAGES}`);
    });
    this.worker.unref();
    this.timer = setInterval(() => this.tick(), everyMs).unref();
  }

  /** A commit went into the WAL: the next tick checkpoints. */
  noteCommit(): void {
    this.wrote = true;
  }

  /** Runs `fn` once no checkpoint of the worker is under way, and lets none start before it ends. */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    this.held++;
    try {
      await this.idle;
      return await fn();
    } finally {
      this.held--;
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    // Held until it has closed its connection: the process may have nothing else left to wait for.
    this.worker.ref();
    this.worker.postMessage('close');
    const timeout = setTimeout(() => void this.worker.terminate(), 5000).unref();
    await this.exited;
    clearTimeout(timeout);
  }

  private tick(): void {
    if (!this.wrote || this.running || this.held > 0) return;
    this.wrote = false;
    this.running = true;
    this.idle = new Promise((resolve) => (this.settle = resolve));
    this.worker.postMessage('checkpoint');
  }

  /** The checkpoint under way is over (or the worker is gone). */
  private ended(): void {
    this.running = false;
    this.settle();
  }
}
