import { SqliteStore } from '../src/store/sqlite.js';
import { type JobWrite, StoreUnavailableError } from '../src/store/store.js';

/** The real SQLite store, counting commits and able to fail the next one on demand. */
export class ObservedStore extends SqliteStore {
  commits: JobWrite[][] = [];
  failNext = false;
  override async commit(writes: readonly JobWrite[]): Promise<void> {
    if (this.failNext) {
      this.failNext = false;
      throw new StoreUnavailableError('disk I/O error');
    }
    this.commits.push([...writes]);
    return super.commit(writes);
  }
}
