/** Every error code of the SDK is in docs/workers.md, and the docs list no code that is gone. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { WorkerErrorCode } from '../src/index.js';

const doc = readFileSync(new URL('../../../docs/workers.md', import.meta.url), 'utf8');

describe('docs/workers.md', () => {
  it('documents every HW_WORKER_* code, and only those', () => {
    const documented = new Set(doc.match(/HW_WORKER_[A-Z_]+/g));
    expect([...documented].sort()).toEqual(Object.values(WorkerErrorCode).sort());
  });

  it('documents the defaults the worker uses', async () => {
    const { workerDefaults } = await import('../src/options.js');
    const row = (name: string) => doc.split('\n').find((l) => l.startsWith(`| \`${name}\``)) ?? '';
    expect(row('progressIntervalMs')).toContain(String(workerDefaults.progressIntervalMs));
    expect(row('minPercentDelta')).toContain(String(workerDefaults.minPercentDelta));
    expect(row('batchDelayMs')).toContain(String(workerDefaults.batchDelayMs));
    expect(row('maxBatchEvents')).toContain(String(workerDefaults.maxBatchEvents));
    expect(row('maxQueuedEvents')).toContain(workerDefaults.maxQueuedEvents.toLocaleString('en'));
    expect(row('pollIntervalMs')).toContain(String(workerDefaults.pollIntervalMs));
    expect(row('closeTimeoutMs')).toContain(workerDefaults.closeTimeoutMs.toLocaleString('en'));
  });
});
