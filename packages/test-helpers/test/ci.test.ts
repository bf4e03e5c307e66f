import { describe, expect, it } from 'vitest';
import { isCi, requireService } from '../src/ci.js';

describe('the CI rule', () => {
  it('counts CI=true and CI=1 as CI, and unset, empty, false and 0 as not', () => {
    for (const value of ['true', '1', 'TRUE', 'yes', 'github']) expect(isCi(value), value).toBe(true);
    for (const value of [undefined, '', ' ', 'false', 'False', '0'])
      expect(isCi(value), String(value)).toBe(false);
  });

  it('skips a suite whose service is missing outside CI, and fails it under CI', () => {
    expect(requireService('Redis', null, true)).toMatchObject({ skip: false });
    expect(requireService('Redis', null, true).title('Redis')).toBe('Redis');
    const skipped = requireService('Redis', 'nothing on 6379', false);
    expect(skipped.skip).toBe(true);
    expect(skipped.title('Redis')).toBe('Redis (skipped: nothing on 6379)');
    expect(() => requireService('Redis', 'nothing on 6379', true)).toThrow(
      /Redis is required when CI is set/,
    );
  });
});
