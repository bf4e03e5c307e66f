import { SqliteStore } from '../src/store/sqlite.js';
import { type JobWrite, StoreUnavailableError } from '../src/store/store.js';

/** The real SQLite store, counting commits and able to fail the next one on demand. */
export class ObservedStore extends SqliteStore {
  commits: JobWrite[][] = [];
  failNext = false;
  /** A commit holding a write of this job fails like a statement refusing its data. */
  poisoned: string | null = null;
  override async commit(writes: readonly JobWrite[]): Promise<void> {
    if (this.failNext) {
      this.failNext = false;
      throw new StoreUnavailableError('disk I/O error');
    }
    if (writes.some((w) => w.state.id === this.poisoned)) {
      throw Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), { code: '22021' });
    }
    this.commits.push([...writes]);
    return super.commit(writes);
  }
}
