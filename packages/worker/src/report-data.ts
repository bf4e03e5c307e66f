/**
 * The data of a job's reports, checked where the worker makes them: a value the
 * hub would refuse throws at the call (a `TypeError` with code
 * `HW_ERR_INVALID_VALUE`) instead of failing later in a background batch.
 * Also the comparison the progress throttle uses to decide what is worth sending.
 */
import { ErrorCode } from '@headway/protocol/codes';

/** A progress report: a percent, or a count (with its total, when known). */
export type ProgressReport =
  | { percent: number; current?: number; total?: number; unit?: string }
  | { percent?: number; current: number; total?: number; unit?: string };

export interface FailOptions {
  /** Whether trying again may succeed (shown to users; default false). */
  retryable?: boolean;
  /** A stable code for the failure. Default: the error's `code` when it is a string, else `FAILED`. */
  code?: string;
}

/** Longest `message` the hub takes, in characters. */
export const MAX_MESSAGE = 4096;
/** Longest stage name the hub takes, in characters. */
export const MAX_NAME = 128;
const MAX_CODE = 128;

/** A progress report as sent: the checked fields of `progress(report, message)`. */
export type ProgressData = {
  percent?: number;
  current?: number;
  total?: number;
  unit?: string;
  message?: string;
};

/** A `TypeError` with the code the hub would have answered. */
export function invalidValue(message: string): TypeError {
  return Object.assign(new TypeError(message), { code: ErrorCode.INVALID_VALUE });
}

/** Text cut to the hub's limit, marked with an ellipsis. */
export function truncate(text: string, max = MAX_MESSAGE): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function finite(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/** The checked data of a progress report. */
export function progressData(report: ProgressReport, message: string | undefined): ProgressData {
  if (typeof report !== 'object' || report === null) {
    throw invalidValue('progress takes {percent} or {current, total?, unit?}');
  }
  const { percent, current, total, unit } = report;
  const data: ProgressData = {};
  if (percent !== undefined) {
    if (!finite(percent) || percent < 0 || percent > 100) throw invalidValue('percent must be 0–100');
    data.percent = percent;
  }
  if (current !== undefined) {
    if (!finite(current) || current < 0) throw invalidValue('current must be a finite number ≥ 0');
    data.current = current;
  }
  if (total !== undefined) {
    if (!finite(total) || total < 0) throw invalidValue('total must be a finite number ≥ 0');
    data.total = total;
  }
  if (data.current !== undefined && data.total !== undefined && data.current > data.total) {
    throw invalidValue('current may not exceed total');
  }
  if (data.percent === undefined && data.current === undefined) {
    throw invalidValue('progress needs a percent or a current count');
  }
  if (unit !== undefined) {
    if (typeof unit !== 'string' || unit.length === 0 || unit.length > 32) {
      throw invalidValue('unit must be 1–32 characters');
    }
    data.unit = unit;
  }
  if (message !== undefined) {
    if (typeof message !== 'string') throw invalidValue('message must be a string');
    data.message = truncate(message);
  }
  return data;
}

function effectivePercent(p: ProgressData): number | undefined {
  if (p.percent !== undefined) return p.percent;
  if (p.current !== undefined && p.total !== undefined)
    return p.total === 0 ? 0 : (p.current / p.total) * 100;
  return undefined;
}

/** Worth a report of its own: the first one, a new message, unit or total, or a big enough move. */
export function isSignificant(next: ProgressData, last: ProgressData | null, minDelta: number): boolean {
  if (last === null) return true;
  if (next.message !== undefined && next.message !== last.message) return true;
  if (next.unit !== last.unit || next.total !== last.total) return true;
  const a = effectivePercent(next);
  const b = effectivePercent(last);
  if (a !== undefined && b !== undefined) return Math.abs(a - b) >= minDelta;
  // A count of unknown extent: any change counts.
  return next.current !== last.current || a !== b;
}

/** The same report twice: nothing new to send. */
export function sameProgress(a: ProgressData, b: ProgressData | null): boolean {
  return (
    b !== null &&
    a.percent === b.percent &&
    a.current === b.current &&
    a.total === b.total &&
    a.unit === b.unit &&
    a.message === b.message
  );
}

/** The `error` of a `failed` event, from an Error, a message or `{code?, message}`. */
export function failure(
  error: unknown,
  options: FailOptions,
): { code?: string; message: string; retryable: boolean } {
  let message: string;
  let code = options.code;
  if (typeof error === 'string') message = error;
  else if (typeof error === 'object' && error !== null) {
    const e = error as { message?: unknown; code?: unknown; name?: unknown };
    message = typeof e.message === 'string' ? e.message : String(error);
    if (code === undefined && typeof e.code === 'string') code = e.code;
  } else message = String(error);
  if (code !== undefined && (typeof code !== 'string' || code.length === 0 || code.length > MAX_CODE)) {
    throw invalidValue(`error code must be 1–${MAX_CODE} characters`);
  }
  const out: { code?: string; message: string; retryable: boolean } = {
    message: truncate(message === '' ? 'failed' : message),
    retryable: options.retryable ?? false,
  };
  if (code !== undefined) out.code = code;
  return out;
}
