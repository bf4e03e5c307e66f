import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CloseCode, closeAction, ErrorCode, httpStatus } from '../src/codes.js';
import { validateClientMessage, validateEventInput } from '../src/validate.js';

const doc = readFileSync(new URL('../../../docs/protocol.md', import.meta.url), 'utf8');

describe('codes', () => {
  it('documents every close code in the table', () => {
    for (const [name, code] of Object.entries(CloseCode))
      expect(doc).toMatch(new RegExp(`\\| ${code} \\| \`${name}\``));
  });

  it('gives every error code an HTTP status', () => {
    for (const code of Object.values(ErrorCode)) expect(httpStatus[code]).toBeGreaterThanOrEqual(400);
  });

  it('groups close codes by the action the client takes', () => {
    expect(closeAction(CloseCode.SLOW_READER)).toBe('reconnect');
    expect(closeAction(CloseCode.SHUTDOWN)).toBe('reconnect');
    expect(closeAction(4099)).toBe('reconnect');
    expect(closeAction(CloseCode.TOKEN_EXPIRED)).toBe('refresh-token');
    expect(closeAction(4150)).toBe('refresh-token');
    expect(closeAction(CloseCode.PROTOCOL_VIOLATION)).toBe('stop');
    expect(closeAction(4299)).toBe('stop');
    expect(closeAction(CloseCode.MESSAGE_TOO_BIG)).toBe('stop');
    expect(closeAction(1006)).toBe('reconnect');
  });
});

describe('client message validation', () => {
  it('tells an unknown type from a bad field', () => {
    expect(validateClientMessage({ type: 'subscribe', id: 'a', job: 'j1', since: 3 })).toMatchObject({
      ok: true,
    });
    expect(
      validateClientMessage({ type: 'subscribe', id: 'a', scope: 'user', since: { j1: 2 } }),
    ).toMatchObject({
      ok: true,
    });
    expect(validateClientMessage({ type: 'nope' })).toMatchObject({ ok: false, code: 'UNKNOWN_TYPE' });
    expect(validateClientMessage({ type: 'subscribe', id: 'a' })).toMatchObject({
      ok: false,
      code: 'INVALID_MESSAGE',
    });
    expect(validateClientMessage({ type: 'subscribe', id: 'a', job: 'j', extra: 1 })).toMatchObject({
      ok: false,
      code: 'INVALID_MESSAGE',
    });
    expect(validateClientMessage({ type: 'subscribe', id: 'a', job: 'bad id!' })).toMatchObject({
      ok: false,
    });
    expect(validateClientMessage([1, 2])).toMatchObject({ ok: false, code: 'INVALID_MESSAGE' });
    expect(validateClientMessage({ type: 'toString' })).toMatchObject({ ok: false, code: 'UNKNOWN_TYPE' });
  });

  it('validates reported events by kind', () => {
    expect(validateEventInput({ kind: 'progress', percent: 3 })).toMatchObject({ ok: true });
    expect(validateEventInput({ kind: 'failed', error: { message: 'x' } })).toMatchObject({ ok: true });
    expect(validateEventInput({ kind: 'failed' })).toMatchObject({ ok: false });
    expect(validateEventInput({ kind: 'teleport' })).toMatchObject({ ok: false });
  });
});
