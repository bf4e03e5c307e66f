import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkDataDir, LOCK_FILE, lockDataDir } from '../src/data-dir.js';
import { ServerErrorCode } from '../src/error-codes.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'headway-lock-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function codeOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return (err as { code?: unknown }).code;
  }
  return null;
}

describe('lockDataDir', () => {
  it('holds the directory until released', () => {
    const lock = lockDataDir(dir);
    expect(readFileSync(join(dir, LOCK_FILE), 'utf8').trim()).toBe(String(process.pid));
    expect(codeOf(() => lockDataDir(dir))).toBe(ServerErrorCode.DATA_DIR_LOCKED);
    lock.release();
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
    lockDataDir(dir).release();
  });

  it('takes over the lock of a process that is gone, and one left under its own pid', () => {
    const gone = spawnSync(process.execPath, ['-e', '']).pid!;
    for (const pid of [gone, process.pid]) {
      writeFileSync(join(dir, LOCK_FILE), `${pid}\n`);
      const lock = lockDataDir(dir);
      expect(readFileSync(join(dir, LOCK_FILE), 'utf8').trim()).toBe(String(process.pid));
      lock.release();
    }
  });

  it('refuses the lock of a live process', () => {
    // The parent of the test process is alive for as long as the test runs.
    writeFileSync(join(dir, LOCK_FILE), `${process.ppid}\n`);
    expect(codeOf(() => lockDataDir(dir))).toBe(ServerErrorCode.DATA_DIR_LOCKED);
  });
});

describe('checkDataDir', () => {
  it.each(['/proc/headway', '/proc/self', '/sys/x', '/dev/shm/../x'])('%s is refused', (path) => {
    expect(codeOf(() => checkDataDir(path))).toBe(ServerErrorCode.CONFIG);
  });
  it('a directory on disk is fine', () => {
    expect(codeOf(() => checkDataDir(join(dir, 'a', 'b')))).toBeNull();
  });
});
