import { describe, expect, it } from 'vitest';
import { SmallMap } from '../src/small-map.js';

describe('SmallMap', () => {
  it('behaves as a Map through one, two and back to no entries', () => {
    const small = new SmallMap<string, number>();
    const map = new Map<string, number>();
    const same = () => {
      expect(small.size).toBe(map.size);
      expect([...small]).toEqual([...map]);
      expect([...small.values()]).toEqual([...map.values()]);
      for (const key of ['a', 'b', 'c']) {
        expect(small.has(key)).toBe(map.has(key));
        expect(small.get(key)).toBe(map.get(key));
      }
    };
    same();
    for (const [op, key, value] of [
      ['set', 'a', 1],
      ['set', 'a', 2],
      ['delete', 'b', 0],
      ['set', 'b', 3],
      ['set', 'c', 4],
      ['delete', 'a', 0],
      ['delete', 'a', 0],
      ['set', 'a', 5],
      ['delete', 'b', 0],
      ['delete', 'c', 0],
      ['delete', 'a', 0],
    ] as const) {
      if (op === 'set') {
        small.set(key, value);
        map.set(key, value);
      } else {
        expect(small.delete(key)).toBe(map.delete(key));
      }
      same();
    }
  });

  it('keeps an entry whose value is undefined', () => {
    const small = new SmallMap<string, undefined>();
    small.set('a', undefined);
    expect(small.has('a')).toBe(true);
    expect(small.size).toBe(1);
    expect([...small.entries()]).toEqual([['a', undefined]]);
    small.clear();
    expect(small.size).toBe(0);
    expect(small.has('a')).toBe(false);
  });
});
