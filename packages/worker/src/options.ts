import type { BackoffOptions } from '@headway/protocol';
import type WebSocket from 'ws';
import { type HeadwayWorkerError, WorkerErrorCode } from './errors.js';

/** Backoff of retried requests: capped exponential with full jitter (`backoffDelay` of `@headway/protocol`). */
export interface RetryOptions extends BackoffOptions {
  /**
   * Attempts of a request whose caller waits for it (`createJob`, reads) before
   * it fails with `HW_WORKER_UNREACHABLE`. Reported events are retried until they
   * are delivered, or until `close()` gives up on them.
   */
  maxAttempts: number;
}

/** A request that failed (no answer, 429 or 5xx) and is about to be sent again. */
export interface RetryInfo {
  /** Method and path, e.g. `POST /v1/events`. */
  request: string;
  /** The attempt that failed: 1 for the first, and so on. */
  attempt: number;
  /** Wait before the next attempt, ms. */
  delayMs: number;
  /** Why it failed, when known: `HW_WORKER_UNREACHABLE` (no answer) or the hub's code. */
  error: HeadwayWorkerError | undefined;
}

/** How the worker learns of cancel and pause requests while it is not reporting. */
export type ControlMode =
  /** One WebSocket per worker, subscribed to its open jobs; polling while it is down. */
  | 'websocket'
  /** `GET /v1/jobs/:id` of each open job that has not reported for `pollIntervalMs`. */
  | 'poll'
  /** Only the answers to reports: a job that does not report learns nothing. */
  | 'none';

export interface HeadwayWorkerOptions {
  /** Base URL of the hub, e.g. `http://127.0.0.1:7070`. Default: `HEADWAY_URL`. */
  url: string;
  /** An API key of the hub. Default: `HEADWAY_API_KEY`. */
  apiKey: string;
  /** Shortest time between two progress reports of one job, ms: at most 4 a second. */
  progressIntervalMs: number;
  /** Smallest change of percent worth a report; a new message, unit or total is always worth one. */
  minPercentDelta: number;
  /** Time events wait for others to join their request, ms. */
  batchDelayMs: number;
  /** Most events in one request (the hub takes at most 1000). */
  maxBatchEvents: number;
  /** Most bytes of events in one request (the hub's body limit is 1 MiB by default). */
  maxBatchBytes: number;
  /** Events queued for sending before progress and log events are dropped; see `docs/workers.md`. */
  maxQueuedEvents: number;
  /** Time one request may take before it is abandoned and retried, ms. */
  requestTimeoutMs: number;
  retry: RetryOptions;
  control: ControlMode;
  /** Interval of control polling when there is no WebSocket, ms. */
  pollIntervalMs: number;
  /** Longest time `close()` waits for queued events to be delivered, ms. */
  closeTimeoutMs: number;
  /** Called with errors that have no caller to reject: dropped events, refused reports. */
  onError: (err: HeadwayWorkerError) => void;
  /** Called before a failed request is sent again, to log it, say. Default: nothing. */
  onRetry: (retry: RetryInfo) => void;
  /** The `fetch` to use. Default: the global one (keep-alive connections). */
  fetch: typeof fetch;
  /** A `ws`-compatible WebSocket class. Default: the `ws` package. */
  WebSocket: typeof WebSocket | undefined;
}

export type HeadwayWorkerOptionsInput = Partial<Omit<HeadwayWorkerOptions, 'retry'>> & {
  retry?: Partial<RetryOptions>;
  /** Where `HEADWAY_URL` and `HEADWAY_API_KEY` are read. Default: `process.env`. */
  env?: Record<string, string | undefined>;
};

const KiB = 1024;

export const retryDefaults: RetryOptions = {
  initialDelayMs: 200,
  maxDelayMs: 10_000, // 10 seconds
  maxAttempts: 8,
};

/** The defaults of every option but `url` and `apiKey`. */
export const workerDefaults = {
  progressIntervalMs: 250, // 4 reports a second
  minPercentDelta: 0.1,
  batchDelayMs: 10,
  maxBatchEvents: 500,
  maxBatchBytes: 256 * KiB,
  maxQueuedEvents: 10_000,
  requestTimeoutMs: 30_000, // 30 seconds
  retry: retryDefaults,
  control: 'websocket' as ControlMode,
  pollIntervalMs: 500,
  closeTimeoutMs: 10_000, // 10 seconds
} as const;

/** A TypeError with a stable code and the name of the offending option. */
function invalid(option: string, message: string): TypeError {
  return Object.assign(new TypeError(`HeadwayWorker: ${message}`), {
    code: WorkerErrorCode.INVALID_OPTION,
    option,
  });
}

function defaultOnError(err: HeadwayWorkerError): void {
  console.warn(`[headway] ${err.code}: ${err.message}`);
}

/** Spread the defaults under `input` and the environment, and validate the result once. */
export function resolveWorkerOptions(input: HeadwayWorkerOptionsInput = {}): HeadwayWorkerOptions {
  const env = input.env ?? process.env;
  const url = input.url ?? env.HEADWAY_URL;
  const apiKey = input.apiKey ?? env.HEADWAY_API_KEY;
  if (url === undefined || url === '') {
    throw invalid('url', 'the hub URL is missing: pass {url} or set HEADWAY_URL');
  }
  if (apiKey === undefined || apiKey === '') {
    throw invalid('apiKey', 'the API key is missing: pass {apiKey} or set HEADWAY_API_KEY');
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalid('url', `"url" is not a URL: ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw invalid('url', `"url" must be an http: or https: URL, not ${parsed.protocol}`);
  }
  const { env: _env, retry, ...rest } = input;
  const options: HeadwayWorkerOptions = {
    ...workerDefaults,
    onError: defaultOnError,
    onRetry: () => {},
    fetch: globalThis.fetch,
    WebSocket: undefined,
    ...stripUndefined(rest),
    url: url.replace(/\/+$/, ''),
    apiKey,
    retry: { ...retryDefaults, ...stripUndefined(retry ?? {}) },
  };
  positive('progressIntervalMs', options.progressIntervalMs, true);
  positive('minPercentDelta', options.minPercentDelta, true);
  positive('batchDelayMs', options.batchDelayMs, true);
  positive('maxBatchEvents', options.maxBatchEvents);
  if (options.maxBatchEvents > 1000)
    throw invalid('maxBatchEvents', '"maxBatchEvents" may not exceed 1000 (the hub limit)');
  positive('maxBatchBytes', options.maxBatchBytes);
  positive('maxQueuedEvents', options.maxQueuedEvents);
  positive('requestTimeoutMs', options.requestTimeoutMs);
  positive('pollIntervalMs', options.pollIntervalMs);
  positive('closeTimeoutMs', options.closeTimeoutMs, true);
  positive('retry.initialDelayMs', options.retry.initialDelayMs, true);
  positive('retry.maxDelayMs', options.retry.maxDelayMs, true);
  positive('retry.maxAttempts', options.retry.maxAttempts);
  if (!['websocket', 'poll', 'none'].includes(options.control)) {
    throw invalid(
      'control',
      `"control" must be "websocket", "poll" or "none", not ${JSON.stringify(options.control)}`,
    );
  }
  if (typeof options.fetch !== 'function') throw invalid('fetch', '"fetch" must be a function');
  if (typeof options.onError !== 'function') throw invalid('onError', '"onError" must be a function');
  if (typeof options.onRetry !== 'function') throw invalid('onRetry', '"onRetry" must be a function');
  return options;
}

function positive(name: string, value: unknown, zeroAllowed = false): void {
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0 || (!zeroAllowed && value === 0)) {
    throw invalid(name, `"${name}" must be a ${zeroAllowed ? 'non-negative' : 'positive'} number`);
  }
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
