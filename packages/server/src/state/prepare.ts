/**
 * The write side of the job rules: a worker's report, a user's control action
 * or a create request, checked against the job's current state and turned into
 * the event to append. The rules themselves are described once, in `reducer.ts`,
 * which folds what these functions return without checking it again.
 */
import type {
  CreateJobInput,
  EventDataMap,
  EventInput,
  EventKind,
  JobState,
  Json,
  JsonObject,
  LogLevel,
} from '@headway/protocol';
import { ErrorCode, JOB_KIND, MAX_KIND_LENGTH } from '@headway/protocol';
import { HeadwayError } from '../errors.js';
import { finished, isTerminal, resolveCounts } from './reducer.js';
import { hasPlan, normalizePlan, percentOf, roundPercent } from './stages.js';

const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

/**
 * The data of the `created` event for a create request: name defaults to the id, kind to none,
 * each stage's weight to 1, metadata to {}, public to false, parent to null.
 * @throws HeadwayError INVALID_VALUE for a bad stage plan or metadata that is not an object.
 */
export function createdData(input: CreateJobInput & { id: string }): EventDataMap['created'] {
  if (input.metadata !== undefined && !isPlainObject(input.metadata)) {
    throw new HeadwayError(ErrorCode.INVALID_VALUE, 'metadata must be a JSON object');
  }
  const data: EventDataMap['created'] = {
    owner: input.owner,
    name: input.name ?? input.id,
    ...(input.kind === undefined ? {} : { kind: input.kind }),
    parent: input.parent ?? null,
    stages: normalizePlan(input.stages),
    metadata: { ...(input.metadata ?? {}) },
    public: input.public ?? false,
  };
  if (input.kind !== undefined) {
    if (typeof input.kind !== 'string' || !JOB_KIND.test(input.kind)) {
      throw new HeadwayError(
        ErrorCode.INVALID_VALUE,
        `kind must be 1–${MAX_KIND_LENGTH} letters, digits, '.', '_', ':' or '-'`,
      );
    }
    data.kind = input.kind;
  }
  return data;
}

/**
 * Validate a reported event against the job's current state and normalize it
 * into the data that will be stored (defaults applied, percent computed from
 * counts, idempotency key dropped).
 * @throws HeadwayError JOB_FINISHED on a terminal job, INVALID_TRANSITION for
 * `paused`/`resumed` in the wrong status, INVALID_VALUE for out-of-range values
 * or an unknown stage, INVALID_MESSAGE for a malformed event.
 */
export function prepareEvent(
  state: JobState,
  input: EventInput,
): { kind: EventKind; data: EventDataMap[EventKind] } {
  if (isTerminal(state.status)) throw finished(state);
  switch (input.kind) {
    case 'progress':
      return { kind: 'progress', data: prepareProgress(state, input) };
    case 'stage': {
      if (typeof input.name !== 'string' || input.name.length === 0) {
        throw new HeadwayError(ErrorCode.INVALID_MESSAGE, 'a stage event needs a stage name');
      }
      if (hasPlan(state.stages) && !state.stages.some((s) => s.name === input.name)) {
        throw new HeadwayError(ErrorCode.INVALID_VALUE, `stage "${input.name}" is not in the job's plan`);
      }
      const data: EventDataMap['stage'] = { name: input.name };
      if (input.message !== undefined) data.message = text(input.message, 'message');
      return { kind: 'stage', data };
    }
    case 'log': {
      const level = input.level ?? 'info';
      if (!LOG_LEVELS.includes(level)) {
        throw new HeadwayError(ErrorCode.INVALID_VALUE, `log level must be one of ${LOG_LEVELS.join(', ')}`);
      }
      return { kind: 'log', data: { message: text(input.message, 'message'), level } };
    }
    case 'metadata':
      if (!isPlainObject(input.metadata)) {
        throw new HeadwayError(ErrorCode.INVALID_VALUE, 'metadata must be a JSON object');
      }
      return { kind: 'metadata', data: { metadata: { ...input.metadata } } };
    case 'paused':
      if (state.status !== 'running' && state.status !== 'queued') {
        throw new HeadwayError(ErrorCode.INVALID_TRANSITION, `a ${state.status} job cannot be paused`);
      }
      return { kind: 'paused', data: withReason(input.reason) };
    case 'resumed':
      if (state.status !== 'paused') {
        throw new HeadwayError(ErrorCode.INVALID_TRANSITION, `a ${state.status} job cannot be resumed`);
      }
      return { kind: 'resumed', data: withReason(input.reason) };
    case 'completed':
      return { kind: 'completed', data: { result: (input.result ?? null) as Json } };
    case 'failed': {
      const error = input.error;
      if (typeof error !== 'object' || error === null) {
        throw new HeadwayError(ErrorCode.INVALID_MESSAGE, 'a failed event needs an error');
      }
      return {
        kind: 'failed',
        data: {
          error: {
            code: error.code ?? 'FAILED',
            message: text(error.message, 'error.message'),
            retryable: error.retryable ?? false,
            stage: state.stage?.name ?? null,
          },
        },
      };
    }
    case 'cancelled':
      return { kind: 'cancelled', data: withReason(input.reason) };
    default:
      throw new HeadwayError(
        ErrorCode.INVALID_MESSAGE,
        `"${(input as { kind: unknown }).kind}" is not an event a worker can report`,
      );
  }
}

function prepareProgress(
  state: JobState,
  input: Extract<EventInput, { kind: 'progress' }>,
): EventDataMap['progress'] {
  const { percent, current, total, unit, message } = input;
  if (percent !== undefined && !(isFiniteNumber(percent) && percent >= 0 && percent <= 100)) {
    throw new HeadwayError(ErrorCode.INVALID_VALUE, 'percent must be a number from 0 to 100');
  }
  if (current !== undefined && !(isFiniteNumber(current) && current >= 0)) {
    throw new HeadwayError(ErrorCode.INVALID_VALUE, 'current must be a non-negative number');
  }
  if (total !== undefined && !(isFiniteNumber(total) && total >= 0)) {
    throw new HeadwayError(ErrorCode.INVALID_VALUE, 'total must be a non-negative number');
  }
  if (percent === undefined && current === undefined) {
    throw new HeadwayError(ErrorCode.INVALID_VALUE, 'a progress event needs percent or current');
  }
  if (unit !== undefined && typeof unit !== 'string') {
    throw new HeadwayError(ErrorCode.INVALID_MESSAGE, 'unit must be a string');
  }
  const counts = resolveCounts(state.progress, { current, total, unit });
  if (counts.current !== undefined && counts.total !== undefined && counts.current > counts.total) {
    throw new HeadwayError(ErrorCode.INVALID_VALUE, 'current must not exceed total');
  }

  const data: EventDataMap['progress'] = {};
  if (percent !== undefined) data.percent = roundPercent(percent);
  else if (counts.current !== undefined && counts.total !== undefined) {
    data.percent = percentOf(counts.current, counts.total);
  }
  if (current !== undefined) data.current = current;
  if (total !== undefined) data.total = total;
  if (unit !== undefined) data.unit = unit;
  if (message !== undefined) data.message = text(message, 'message');
  return data;
}

/**
 * Turn a control request from the UI into the event to append, or null when it
 * changes nothing (a repeated request), so that retries are harmless.
 * @throws HeadwayError JOB_FINISHED on a terminal job.
 */
export function prepareControl(
  state: JobState,
  action: 'cancel' | 'pause' | 'resume',
  reason: string | undefined,
  by: string,
): { kind: EventKind; data: EventDataMap[EventKind] } | null {
  if (isTerminal(state.status)) throw finished(state);
  const data: EventDataMap['cancel_requested'] = reason === undefined ? { by } : { reason, by };
  switch (action) {
    case 'cancel':
      if (state.control.cancelRequested) return null;
      if (state.status === 'queued') return { kind: 'cancelled', data: { ...withReason(reason), by } };
      return { kind: 'cancel_requested', data };
    case 'pause':
      return state.control.paused ? null : { kind: 'pause_requested', data };
    case 'resume':
      return state.control.paused || state.status === 'paused' ? { kind: 'resume_requested', data } : null;
    default:
      throw new HeadwayError(ErrorCode.INVALID_MESSAGE, `unknown control action "${String(action)}"`);
  }
}

function withReason(reason: string | undefined): { reason?: string } {
  return reason === undefined ? {} : { reason: text(reason, 'reason') };
}

function text(value: unknown, field: string): string {
  if (typeof value !== 'string')
    throw new HeadwayError(ErrorCode.INVALID_MESSAGE, `${field} must be a string`);
  return value;
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function isPlainObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
