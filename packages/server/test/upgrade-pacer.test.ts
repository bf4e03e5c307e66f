import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { UpgradePacer } from '../src/transports/upgrade-pacer.js';

describe('UpgradePacer', () => {
  it('accepts in order, a slice of time per turn of the event loop', async () => {
    let clock = 0;
    const pacer = new UpgradePacer(4, () => clock);
    const accepted: number[] = [];
    // Each upgrade takes 1 ms: four fit in a 4 ms slice.
    for (let i = 0; i < 10; i++)
      pacer.push(() => {
        accepted.push(i);
        clock += 1;
      });
    expect(accepted).toEqual([]);
    expect(pacer.waiting).toBe(10);
    await nextTurn();
    expect(accepted).toEqual([0, 1, 2, 3]);
    await nextTurn();
    expect(accepted).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    await nextTurn();
    expect(accepted).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(pacer.waiting).toBe(0);
  });

  it('hands what waits to `clear`, and accepts nothing more of it', async () => {
    const pacer = new UpgradePacer(4, () => 0);
    const accepted: string[] = [];
    pacer.push(() => accepted.push('a'));
    pacer.push(() => accepted.push('b'));
    const dropped: (() => void)[] = [];
    pacer.clear((accept) => dropped.push(accept));
    expect(dropped).toHaveLength(2);
    await nextTurn();
    expect(accepted).toEqual([]);
    // A dropped upgrade is the caller's to refuse.
    for (const accept of dropped) accept();
    expect(accepted).toEqual(['a', 'b']);
    expect(pacer.waiting).toBe(0);
  });
});
