import { backoffDelay } from '@headway/protocol';
import type { ErrorCode } from '@headway/protocol/codes';
import { HeadwayWorkerError, WorkerErrorCode } from './errors.js';
import type { HeadwayWorkerOptions, RetryInfo } from './options.js';

/** One answer of the hub. */
export interface HubResponse {
  status: number;
  /** Parsed JSON body, or undefined when there was none. */
  body: unknown;
  /** The hub's `Retry-After`, ms. */
  retryAfterMs: number | undefined;
}

/** True for answers worth retrying: overload, rate limits and server errors. */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || status >= 500;
}

/** `Retry-After` in ms: delta-seconds or an HTTP date. */
export function parseRetryAfter(header: string | null): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** The hub's error as a `HeadwayWorkerError` with its `HW_ERR_*` code. */
export function hubError(response: HubResponse, job?: string): HeadwayWorkerError {
  const error = (response.body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  if (error && typeof error.code === 'string') {
    const message = typeof error.message === 'string' ? error.message : error.code;
    return new HeadwayWorkerError(error.code as ErrorCode, message, { status: response.status, job });
  }
  return new HeadwayWorkerError(
    WorkerErrorCode.BAD_RESPONSE,
    `the hub answered HTTP ${response.status} without a Headway error body`,
    { status: response.status, job },
  );
}

/**
 * HTTP access to the hub's REST API: JSON in and out, the API key as a bearer
 * credential, a timeout per request, and retries for callers that wait.
 */
export class HubClient {
  constructor(
    private readonly options: HeadwayWorkerOptions,
    /** Aborts every request in flight when the worker closes. */
    private readonly closing: AbortSignal,
  ) {}

  /**
   * One request. Resolves with any HTTP answer; rejects with
   * `HW_WORKER_UNREACHABLE` when there was none (network error or timeout).
   */
  async send(method: string, path: string, body?: unknown): Promise<HubResponse> {
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.options.apiKey}`,
      accept: 'application/json',
    };
    if (body !== undefined) headers['content-type'] = 'application/json';
    // A timer cleared with the request, where `AbortSignal.timeout` would leave one
    // behind for `requestTimeoutMs` after every request.
    const timeout = new AbortController();
    const timer = setTimeout(
      () => timeout.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')),
      this.options.requestTimeoutMs,
    );
    timer.unref();
    const signal = AbortSignal.any([this.closing, timeout.signal]);
    let res: Response;
    let text: string;
    try {
      res = await this.options.fetch(`${this.options.url}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
      text = await res.text();
    } catch (err) {
      const why = this.closing.aborted ? 'the worker closed' : ((err as Error)?.message ?? String(err));
      throw new HeadwayWorkerError(WorkerErrorCode.UNREACHABLE, `${method} ${path}: no answer (${why})`, {
        cause: err,
      });
    } finally {
      clearTimeout(timer);
    }
    let parsed: unknown;
    if (text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
    }
    return {
      status: res.status,
      body: parsed,
      retryAfterMs: parseRetryAfter(res.headers.get('retry-after')),
    };
  }

  /**
   * A request whose caller waits: retried with backoff on no answer, 429 and
   * 5xx, up to `retry.maxAttempts`. Resolves with a 2xx answer; rejects with the
   * hub's error (`onRefused` may turn a refusal into an answer first).
   */
  async call(
    method: string,
    path: string,
    body?: unknown,
    onRefused?: (response: HubResponse, retried: boolean) => HubResponse | null,
  ): Promise<HubResponse> {
    const { retry } = this.options;
    let retried = false;
    for (let attempt = 1; ; attempt++) {
      let response: HubResponse | null = null;
      let failure: HeadwayWorkerError;
      try {
        response = await this.send(method, path, body);
      } catch (err) {
        failure = err as HeadwayWorkerError;
      }
      if (response) {
        if (response.status >= 200 && response.status < 300) return response;
        if (!isRetryableStatus(response.status)) {
          const answer = onRefused?.(response, retried);
          if (answer) return answer;
          throw hubError(response);
        }
        failure = hubError(response);
      }
      if (this.closing.aborted || attempt >= retry.maxAttempts) {
        throw new HeadwayWorkerError(
          WorkerErrorCode.UNREACHABLE,
          `${method} ${path} failed after ${attempt} attempts: ${failure!.message}`,
          { cause: failure! },
        );
      }
      retried = true;
      const delayMs = backoffDelay(attempt, retry, response?.retryAfterMs);
      notifyRetry(this.options, { request: `${method} ${path}`, attempt, delayMs, error: failure! });
      try {
        await sleep(delayMs, { signal: this.closing });
      } catch (err) {
        // Closing cuts the wait short; the next attempt then fails at once and ends the loop.
        if (!this.closing.aborted) throw err;
      }
    }
  }
}

/** Tell `onRetry` of a retry; a listener that throws does not stop it. */
export function notifyRetry(options: HeadwayWorkerOptions, info: RetryInfo): void {
  try {
    options.onRetry(info);
  } catch {
    // The listener's failure is its own.
  }
}

/**
 * Resolves after `ms`; once `signal` aborts, rejects with its reason: the
 * contract of `setTimeout(ms, undefined, {signal})` from `node:timers/promises`,
 * and the worker's one wait.
 *
 * Why not that function itself: vitest's fake timers do not replace
 * `node:timers/promises` (https://github.com/vitest-dev/vitest/issues/10871),
 * and the retry tests drive these waits with a fake clock. Once that is fixed,
 * the worker uses that function instead.
 */
export function sleep(ms: number, { signal }: { signal: AbortSignal }): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
