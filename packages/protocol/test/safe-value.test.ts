import { describe, expect, it } from 'vitest';
import { findUnsafeValue, MAX_JSON_DEPTH, unsafeString } from '../src/safe-value.js';
import { validateClientMessage, validateEventInput } from '../src/validate.js';

function nested(levels: number): unknown {
  let value: unknown = 'leaf';
  for (let i = 0; i < levels; i++) value = i % 2 ? [value] : { a: value };
  return value;
}

describe('unsafeString', () => {
  it.each([
    ['plain', null],
    ['emoji 😀 (a surrogate pair)', null],
    ['\u0000', 'nul'],
    ['x\ud800', 'lone-surrogate'],
    ['\ud800x', 'lone-surrogate'],
    ['\udc00', 'lone-surrogate'],
    ['😀'.split('').reverse().join(''), 'lone-surrogate'],
  ])('%j → %s', (text, problem) => {
    expect(unsafeString(text)).toBe(problem);
  });
});

describe('findUnsafeValue', () => {
  it('finds a bad string anywhere, keys included, with its path', () => {
    expect(findUnsafeValue({ a: [1, { b: 'x\u0000' }] })).toEqual({ path: '/a/1/b', problem: 'nul' });
    expect(findUnsafeValue({ ok: { '\ud800': 1 } })?.problem).toBe('lone-surrogate');
    expect(findUnsafeValue({ a: ['fine', 2, null, true] })).toBeNull();
  });

  it(`allows ${MAX_JSON_DEPTH} levels and refuses one more, however deep, without recursion`, () => {
    expect(findUnsafeValue(nested(MAX_JSON_DEPTH))).toBeNull();
    expect(findUnsafeValue(nested(MAX_JSON_DEPTH + 1))?.problem).toBe('too-deep');
    expect(findUnsafeValue(nested(100_000))?.problem).toBe('too-deep');
  });

  it('is applied by the validators with INVALID_VALUE', () => {
    expect(validateEventInput({ kind: 'log', message: 'a\u0000' })).toMatchObject({
      ok: false,
      code: 'INVALID_VALUE',
    });
    expect(validateClientMessage({ type: 'subscribe', id: '\udc00', job: 'j' })).toMatchObject({
      ok: false,
      code: 'INVALID_VALUE',
    });
    expect(validateEventInput({ kind: 'log', message: 'fine' }).ok).toBe(true);
  });
});
