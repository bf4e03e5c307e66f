import { describe, expect, it } from 'vitest';
import { BoundedMap } from '../src/bounded-map.js';

describe('BoundedMap', () => {
  it('drops the oldest entry past its limit and reports it', () => {
    const dropped: [string, number][] = [];
    const map = new BoundedMap<string, number>(2, (k, v) => dropped.push([k, v]));
    map.set('a', 1).set('b', 2).set('c', 3);
    expect([...map.keys()]).toEqual(['b', 'c']);
    expect(dropped).toEqual([['a', 1]]);
  });

  it('touch makes an entry the youngest, so it survives the next eviction', () => {
    const map = new BoundedMap<string, number>(2);
    map.set('a', 1).set('b', 2);
    expect(map.touch('a')).toBe(1);
    map.set('c', 3);
    expect([...map.keys()]).toEqual(['a', 'c']);
    expect(map.touch('zzz')).toBeUndefined();
  });

  it('overwriting a key does not evict', () => {
    const map = new BoundedMap<string, number>(2);
    map.set('a', 1).set('b', 2).set('a', 5);
    expect([...map.entries()]).toEqual([
      ['a', 5],
      ['b', 2],
    ]);
  });

  it('passes over pinned entries, and stays over its limit while all are pinned', () => {
    const pinned = new Set(['a']);
    const map = new BoundedMap<string, number>(2, undefined, (k) => pinned.has(k));
    map.set('a', 1).set('b', 2).set('c', 3);
    expect([...map.keys()]).toEqual(['a', 'c']);
    pinned.add('c');
    map.set('d', 4);
    expect([...map.keys()]).toEqual(['a', 'c']);
    pinned.add('e');
    map.set('e', 5);
    expect([...map.keys()]).toEqual(['a', 'c', 'e']);
  });

  it('refuses a limit below one', () => {
    expect(() => new BoundedMap(0)).toThrow(RangeError);
  });
});
