/**
 * What every string and every nesting on the wire must respect, whatever the
 * field: no NUL character and no lone UTF-16 surrogate (PostgreSQL refuses the
 * first in `text` and `jsonb`, and neither survives a round trip through UTF-8),
 * and at most `MAX_JSON_DEPTH` levels of arrays and objects (a deeply nested
 * value exhausts the stack of the code that walks it, here and in clients).
 * Checked once at validation, for every transport and every store.
 */

/** Levels of nested arrays and objects a message or body may have, counting its own. */
export const MAX_JSON_DEPTH = 32;

/** Why a value was refused: the JSON pointer of the first offending place, and what is wrong there. */
export interface UnsafeValue {
  path: string;
  problem: 'nul' | 'lone-surrogate' | 'too-deep';
}

/** A NUL, or a high surrogate not followed by a low one, or a low surrogate not preceded by a high one. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding NUL is the point.
const UNSAFE_CHARACTER = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** The problem of one string, or null. */
export function unsafeString(text: string): UnsafeValue['problem'] | null {
  const match = UNSAFE_CHARACTER.exec(text);
  if (match === null) return null;
  return match[0] === '\u0000' ? 'nul' : 'lone-surrogate';
}

/**
 * The first string (value or key) with a NUL or a lone surrogate, or the first
 * place nested deeper than `maxDepth`, in a parsed JSON value; null when it is safe.
 * Iterative, so that the check itself cannot overflow the stack.
 */
export function findUnsafeValue(value: unknown, maxDepth: number = MAX_JSON_DEPTH): UnsafeValue | null {
  if (typeof value === 'string') {
    const problem = unsafeString(value);
    return problem === null ? null : { path: '/', problem };
  }
  if (typeof value !== 'object' || value === null) return null;
  // Places are kept as a parent and a key: a path is built only for a place that fails.
  const stack: Place[] = [{ value, parent: null, key: '', depth: 1 }];
  while (stack.length > 0) {
    const place = stack.pop()!;
    if (place.depth > maxDepth) return { path: pathOf(place), problem: 'too-deep' };
    const v = place.value as Record<string, unknown> | unknown[];
    const keys = Array.isArray(v) ? null : Object.keys(v);
    const n = keys === null ? (v as unknown[]).length : keys.length;
    for (let i = 0; i < n; i++) {
      const key = keys === null ? i : keys[i]!;
      if (keys !== null) {
        const problem = unsafeString(key as string);
        if (problem !== null) return { path: pathOf({ value: null, parent: place, key, depth: 0 }), problem };
      }
      const child = (v as Record<string | number, unknown>)[key];
      if (typeof child === 'string') {
        const problem = unsafeString(child);
        if (problem !== null) return { path: pathOf({ value: null, parent: place, key, depth: 0 }), problem };
      } else if (typeof child === 'object' && child !== null) {
        stack.push({ value: child, parent: place, key, depth: place.depth + 1 });
      }
    }
  }
  return null;
}

/** A place in the value being checked: the value, and where it sits in its parent. */
interface Place {
  value: unknown;
  parent: Place | null;
  key: string | number;
  depth: number;
}

/** The JSON pointer of a place ('/' for the value itself). */
function pathOf(place: Place): string {
  const keys: string[] = [];
  for (let p: Place | null = place; p?.parent; p = p.parent) {
    keys.push(typeof p.key === 'number' ? String(p.key) : escapePointer(p.key));
  }
  return keys.length === 0 ? '/' : `/${keys.reverse().join('/')}`;
}

/** A readable sentence for an unsafe value, e.g. for an error message. */
export function describeUnsafeValue(found: UnsafeValue, maxDepth: number = MAX_JSON_DEPTH): string {
  switch (found.problem) {
    case 'nul':
      return `${found.path}: a string contains a NUL character (\\u0000)`;
    case 'lone-surrogate':
      return `${found.path}: a string contains a lone UTF-16 surrogate`;
    case 'too-deep':
      return `${found.path}: nested deeper than ${maxDepth} levels`;
  }
}

function escapePointer(key: string): string {
  // A key with a lone surrogate is reported by its path: keep the path itself printable.
  return (
    key
      .replace(/~/g, '~0')
      .replace(/\//g, '~1')
      // biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is what must not reach the message.
      .replace(/[\u0000\ud800-\udfff]/g, '\ufffd')
  );
}
