/**
 * Compiled validators for what arrives outside Fastify's request validation:
 * WebSocket client messages, and the events of `POST /v1/events`, each checked
 * on its own so that one bad event fails only its job.
 */
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { ValueError } from '@sinclair/typebox/value';
import { type ClientMessage, type ClientMessageType, clientMessageSchemas } from './client-messages.js';
import { type EventInput, EventInputSchema } from './event-input.js';
import { describeUnsafeValue, findUnsafeValue } from './safe-value.js';

export type ValidationResult<T> =
  | { ok: true; value: T }
  | { ok: false; code: 'UNKNOWN_TYPE' | 'INVALID_MESSAGE' | 'INVALID_VALUE'; message: string };

/** A NUL, a lone surrogate or too deep a nesting anywhere in `value` (see safe-value.ts). */
function unsafe(value: unknown): ValidationResult<never> | null {
  const found = findUnsafeValue(value);
  return found === null ? null : { ok: false, code: 'INVALID_VALUE', message: describeUnsafeValue(found) };
}

const compiled = Object.fromEntries(
  Object.entries(clientMessageSchemas).map(([type, schema]) => [type, TypeCompiler.Compile(schema)]),
) as unknown as Record<ClientMessageType, ReturnType<typeof TypeCompiler.Compile>>;

const eventCompiled = TypeCompiler.Compile(EventInputSchema);

/**
 * What is wrong, in words: the `errorMessage` a schema carries (an id's rule
 * rather than its regular expression), else the validator's own message.
 */
export function describeValueError(error: ValueError): string {
  const words = (error.schema as { errorMessage?: unknown }).errorMessage;
  return typeof words === 'string' ? words : error.message;
}

/**
 * Validates a parsed client message. Distinguishes an unknown `type` from a known
 * type with bad fields, so each gets its own error code.
 */
export function validateClientMessage(value: unknown): ValidationResult<ClientMessage> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, code: 'INVALID_MESSAGE', message: 'a message must be a JSON object' };
  }
  const type = (value as { type?: unknown }).type;
  if (typeof type !== 'string') return { ok: false, code: 'INVALID_MESSAGE', message: 'missing "type"' };
  if (!Object.hasOwn(compiled, type)) {
    return { ok: false, code: 'UNKNOWN_TYPE', message: `unknown message type "${type.slice(0, 64)}"` };
  }
  const check = compiled[type as ClientMessageType];
  if (check.Check(value)) return unsafe(value) ?? { ok: true, value: value as ClientMessage };
  const first = check.Errors(value).First();
  return {
    ok: false,
    code: 'INVALID_MESSAGE',
    message: first ? `${type}: ${first.path || '/'} ${describeValueError(first)}` : `invalid ${type} message`,
  };
}

/** Validates one reported event (used for `POST /v1/events`, where each event is checked on its own). */
export function validateEventInput(value: unknown): ValidationResult<EventInput> {
  if (eventCompiled.Check(value)) return unsafe(value) ?? { ok: true, value: value as EventInput };
  const first = eventCompiled.Errors(value).First();
  return {
    ok: false,
    code: 'INVALID_MESSAGE',
    message: first ? `${first.path || '/'} ${describeValueError(first)}` : 'invalid event',
  };
}
