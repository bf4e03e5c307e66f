/**
 * Demo workers for `headway start --demo`: simulated media pipelines, playlist
 * imports and the occasional failure, so that the dashboard shows realistic
 * movement the moment the hub starts.
 *
 * The workers are ordinary HTTP clients of the hub's REST API holding an API
 * key, exactly like a customer's worker: they create jobs, report events with
 * idempotency keys (batched across jobs in one `POST /v1/events` when several
 * report in the same tick), honour the `control` state returned by each report
 * (cancel, pause), retry network errors and 503s with bounded backoff, and
 * drop a job the hub says was deleted. Nothing here touches the hub's internals.
 *
 * Pace: every running job reports at most once per tick (250 ms of real time,
 * so about 4 reports a second), and each tick advances the simulation by
 * `0.25 s × speed`. Network backoff and pause polling run in real time.
 */
import { randomBytes } from 'node:crypto';
import type {
  Control,
  CreateJobInput,
  EventInput,
  JobState,
  Json,
  JsonObject,
  PublishResult,
} from '@headway/protocol';
import { ErrorCode, httpStatus } from '@headway/protocol';

export interface DemoLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface DemoOptions {
  /** Base URL of the hub, e.g. `http://127.0.0.1:7070`. */
  url: string;
  /** An API key of the hub. */
  apiKey: string;
  /** Owner of every demo job (the user whose dashboard shows them). */
  owner: string;
  logger?: DemoLogger;
  /** Speed factor for tests: 1 = real time. */
  speed?: number;
  /** Most jobs running at once. Default 6. */
  concurrency?: number;
}

export interface DemoHandle {
  /**
   * Stop starting jobs, abort every loop and timer, mark the jobs still running
   * as cancelled (best effort, bounded), and resolve once everything has settled.
   */
  stop(): Promise<void>;
}

/** Real time between two reports of one job. */
const TICK_MS = 250;
/** Real time between two reads of a paused job's control state. */
const PAUSE_POLL_MS = 500;
/** Attempts of one request before the demo gives up on it. */
const MAX_ATTEMPTS = 6;
const BACKOFF_BASE_MS = 250;
const BACKOFF_MAX_MS = 5_000;
/** Time `stop()` allows for the final "demo stopped" reports. */
const FINAL_REPORT_MS = 1_500;

const MB = 1024 * 1024;
const MEDIA_PLAN = [
  { name: 'download', weight: 2 },
  { name: 'transcode', weight: 4 },
  { name: 'transcribe', weight: 3 },
  { name: 'translate', weight: 1 },
];
const BATCH_SIZE = 10;
/** One media job in this many fails (a retry never does). */
const FAILURE_EVERY = 6;

const noopLogger: DemoLogger = { info() {}, warn() {} };

/**
 * Start the demo workers against a running hub. Never throws and never rejects:
 * every error is logged through `options.logger` and the workers carry on.
 */
export function startDemo(options: DemoOptions): DemoHandle {
  const demo = new Demo(options);
  demo.start();
  return { stop: () => demo.stop() };
}

// ---------------------------------------------------------------------------
// Errors and control flow

/**
 * Ends a job's run without it being an error: the demo is stopping (`aborted`),
 * the hub no longer wants reports for the job (`dropped`: deleted, finished
 * elsewhere, not found), or the worker acknowledged a cancel (`cancelled`).
 */
class Halt extends Error {
  constructor(readonly why: 'aborted' | 'dropped' | 'cancelled') {
    super(`halt: ${why}`);
    this.name = 'Halt';
  }
}

/** A failed request: an error body from the hub, or (status 0) a network error. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Network errors, rate limits and server-side failures may pass; anything else would fail again. */
function isRetryable(err: unknown): err is ApiError {
  return err instanceof ApiError && (err.status === 0 || err.status === 429 || err.status >= 500);
}

/** The hub no longer takes reports for this job: stop working on it quietly. */
const GONE_CODES: readonly string[] = [ErrorCode.JOB_DELETED, ErrorCode.JOB_FINISHED, ErrorCode.NOT_FOUND];

function isGone(err: unknown): boolean {
  return err instanceof ApiError && GONE_CODES.includes(err.code);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// ---------------------------------------------------------------------------
// HTTP

class Api {
  private readonly base: string;

  constructor(
    url: string,
    private readonly apiKey: string,
  ) {
    this.base = url.replace(/\/+$/, '');
  }

  /** One attempt. Throws `Halt('aborted')` when `signal` aborts, `ApiError` otherwise. */
  async request<T>(method: 'GET' | 'POST', path: string, body: unknown, signal: AbortSignal): Promise<T> {
    if (signal.aborted) throw new Halt('aborted');
    let res: Response;
    let text: string;
    try {
      res = await fetch(this.base + path, {
        method,
        headers: {
          authorization: `Bearer ${this.apiKey}`,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
      text = await res.text();
    } catch (err) {
      if (signal.aborted) throw new Halt('aborted');
      throw new ApiError(0, 'NETWORK', `${method} ${path}: ${messageOf(err)}`);
    }
    let parsed: unknown = null;
    try {
      parsed = text === '' ? null : JSON.parse(text);
    } catch {
      // A proxy's HTML error page, say: reported below by status.
    }
    if (!res.ok) {
      const error = (parsed as { error?: { code?: unknown; message?: unknown } } | null)?.error;
      const retryAfter = Number(res.headers.get('retry-after'));
      throw new ApiError(
        res.status,
        typeof error?.code === 'string' ? error.code : `HTTP_${res.status}`,
        `${method} ${path}: ${typeof error?.message === 'string' ? error.message : res.statusText}`,
        Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : undefined,
      );
    }
    return parsed as T;
  }
}

type KeyedEvent = EventInput & { key: string };

interface PendingReport {
  job: string;
  events: KeyedEvent[];
  resolve(result: PublishResult): void;
  reject(err: unknown): void;
}

type ManyResult =
  | { job: string; seq: number; control: Control }
  | { job: string; error: { code: string; message: string } };

/**
 * Collects the reports made in one turn of the event loop (all jobs wake on the
 * same tick) and sends them in one request: `POST /v1/jobs/:id/events` for a
 * single job, `POST /v1/events` for several. One attempt per report; the caller
 * retries, which is safe because every event carries an idempotency key.
 */
class Batcher {
  private queue: PendingReport[] = [];
  private immediate: NodeJS.Immediate | null = null;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly api: Api,
    private readonly signal: AbortSignal,
  ) {}

  send(job: string, events: KeyedEvent[]): Promise<PublishResult> {
    if (this.signal.aborted) return Promise.reject(new Halt('aborted'));
    return new Promise((resolve, reject) => {
      this.queue.push({ job, events, resolve, reject });
      this.immediate ??= setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    this.immediate = null;
    // One request holds one report per job, so that each job's events stay in order.
    const batch: PendingReport[] = [];
    const later: PendingReport[] = [];
    const seen = new Set<string>();
    for (const report of this.queue) {
      if (seen.has(report.job)) later.push(report);
      else {
        seen.add(report.job);
        batch.push(report);
      }
    }
    this.queue = later;
    if (later.length > 0) this.immediate = setImmediate(() => this.flush());
    if (batch.length === 0) return;
    const posting = this.post(batch).finally(() => this.inFlight.delete(posting));
    this.inFlight.add(posting);
  }

  /** Settles every report of the batch; never rejects. */
  private async post(batch: PendingReport[]): Promise<void> {
    try {
      if (batch.length === 1) {
        const [only] = batch;
        only!.resolve(
          await this.api.request<PublishResult>(
            'POST',
            `/v1/jobs/${encodeURIComponent(only!.job)}/events`,
            { events: only!.events },
            this.signal,
          ),
        );
        return;
      }
      const events = batch.flatMap((r) => r.events.map((e) => ({ job: r.job, ...e })));
      const reply = await this.api.request<{ results: ManyResult[] }>(
        'POST',
        '/v1/events',
        { events },
        this.signal,
      );
      const byJob = new Map((reply?.results ?? []).map((r) => [r.job, r]));
      for (const report of batch) {
        const result = byJob.get(report.job);
        if (!result) report.reject(new ApiError(500, ErrorCode.INTERNAL, `no result for job ${report.job}`));
        else if ('error' in result) {
          const status = httpStatus[result.error.code as ErrorCode] ?? 500;
          report.reject(new ApiError(status, result.error.code, result.error.message));
        } else report.resolve({ seq: result.seq, control: result.control });
      }
    } catch (err) {
      for (const report of batch) report.reject(err);
    }
  }

  /** Refuse what is queued; requests under way end through the aborted signal. */
  async stop(): Promise<void> {
    if (this.immediate) clearImmediate(this.immediate);
    this.immediate = null;
    for (const report of this.queue) report.reject(new Halt('aborted'));
    this.queue = [];
    await Promise.allSettled([...this.inFlight]);
  }
}

// ---------------------------------------------------------------------------
// Time

/**
 * One interval shared by every job, so that their reports fall in the same turn
 * of the event loop and go out in one request. It runs only while someone waits.
 */
class Ticker {
  private waiters = new Set<{ resolve(): void; reject(err: unknown): void }>();
  private interval: NodeJS.Timeout | null = null;
  private stopped = false;

  next(): Promise<void> {
    if (this.stopped) return Promise.reject(new Halt('aborted'));
    return new Promise((resolve, reject) => {
      this.waiters.add({ resolve, reject });
      this.interval ??= setInterval(() => this.tick(), TICK_MS);
    });
  }

  private tick(): void {
    const waiting = [...this.waiters];
    this.waiters.clear();
    if (waiting.length === 0 && this.interval) {
      clearInterval(this.interval);
      this.interval = null;
    }
    for (const w of waiting) w.resolve();
  }

  stop(): void {
    this.stopped = true;
    if (this.interval) clearInterval(this.interval);
    this.interval = null;
    for (const w of this.waiters) w.reject(new Halt('aborted'));
    this.waiters.clear();
  }
}

/** A timer that is cleared, not merely forgotten, when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(new Halt('aborted'));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(new Halt('aborted'));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

// ---------------------------------------------------------------------------
// Randomness and names

const random = (min: number, max: number) => min + Math.random() * (max - min);
const randomInt = (min: number, max: number) => Math.floor(random(min, max + 1));
const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;
const pad = (n: number, width: number) => String(n).padStart(width, '0');
const round2 = (n: number) => Math.round(n * 100) / 100;

/** A pace that drifts within ±30%, so that the rate and the ETA visibly move. */
function wander(pace: number): number {
  return Math.min(1.3, Math.max(0.7, pace + random(-0.12, 0.12)));
}

function newId(prefix: string): string {
  return `${prefix}-${randomBytes(5).toString('hex')}`;
}

function formatBytes(bytes: number): string {
  return bytes >= 1024 * MB ? `${(bytes / 1024 / MB).toFixed(2)} GB` : `${(bytes / MB).toFixed(0)} MB`;
}

const MEDIA_FILES: readonly (() => string)[] = [
  () => `lecture-${pad(randomInt(1, 120), 3)}.mp4`,
  () => `keynote-2024-${pick(['berlin', 'austin', 'lisbon', 'tokyo'])}.mov`,
  () => `interview-${pick(['garcia', 'okafor', 'lindqvist', 'tanaka'])}-raw.mkv`,
  () => `webinar-q${randomInt(1, 4)}-review.mp4`,
  () => `podcast-ep${randomInt(80, 160)}.mp4`,
  () => `town-hall-${pick(['march', 'june', 'september', 'december'])}.mov`,
  () => `product-demo-v${randomInt(2, 9)}.webm`,
];
const RESOLUTIONS = ['1920x1080', '1920x1080', '3840x2160', '1280x720'];
const TARGET_LANGUAGES = ['de', 'fr', 'es', 'ja', 'pt', 'it'];
const LANGUAGE_NAMES: Record<string, string> = {
  en: 'English',
  de: 'German',
  fr: 'French',
  es: 'Spanish',
  ja: 'Japanese',
  pt: 'Portuguese',
  it: 'Italian',
};
const PLAYLISTS = [
  'CS101 Lectures',
  'Conference Talks 2024',
  'Cooking Basics',
  'Product Tutorials',
  'Physics Lab Recordings',
  'Design Reviews',
];

interface MediaSpec {
  file: string;
  source: string;
  sizeBytes: number;
  durationSeconds: number;
  resolution: string;
  languages: string[];
  /** Where this run fails, if it does. */
  failure: { stage: 'transcode' | 'transcribe'; at: number } | null;
  /** The failed job this one retries. */
  retryOf: string | null;
  attempt: number;
}

function mediaSpec(fails: boolean): MediaSpec {
  const file = MEDIA_FILES[Math.floor(Math.random() * MEDIA_FILES.length)]!();
  // Log-uniform between 200 MB and 2 GB: most files are mid-sized, a few are large.
  const sizeBytes = Math.round(Math.exp(random(Math.log(200 * MB), Math.log(2048 * MB))));
  const targets = [...TARGET_LANGUAGES].sort(() => Math.random() - 0.5).slice(0, randomInt(1, 3));
  return {
    file,
    source: `s3://media-ingest/uploads/${file}`,
    sizeBytes,
    durationSeconds: randomInt(600, 5400),
    resolution: pick(RESOLUTIONS),
    languages: ['en', ...targets],
    failure: fails
      ? Math.random() < 0.5
        ? { stage: 'transcode', at: random(0.3, 0.8) }
        : { stage: 'transcribe', at: random(0.2, 0.7) }
      : null,
    retryOf: null,
    attempt: 1,
  };
}

// ---------------------------------------------------------------------------
// One job as its worker sees it

/** Reports for one job and acts on the control state the hub returns. */
class JobWorker {
  private counter = 0;

  constructor(
    private readonly demo: Demo,
    readonly id: string,
  ) {}

  /** Report events, then honour the control state of the reply (cancel, pause). */
  async step(...events: EventInput[]): Promise<void> {
    await this.obey(await this.report(events));
  }

  /**
   * Report events (retrying transient failures) and return the job's control
   * state. Keys are assigned once, before the first attempt, so that a retry of
   * a request the hub did apply changes nothing.
   * @throws Halt('dropped') when the hub no longer takes reports for the job.
   */
  async report(events: EventInput[]): Promise<Control> {
    const keyed = events.map((e): KeyedEvent => ({ ...e, key: `${this.id}:${++this.counter}` }));
    try {
      const reply = await this.demo.retrying({ job: this.id }, () => this.demo.batcher.send(this.id, keyed));
      return reply.control;
    } catch (err) {
      throw isGone(err) ? new Halt('dropped') : err;
    }
  }

  /** Report the job's last events (the last one terminal) and forget the job. */
  async finish(...events: EventInput[]): Promise<void> {
    await this.report(events);
    this.demo.active.delete(this.id);
  }

  async read(): Promise<JobState> {
    try {
      return await this.demo.retrying({ job: this.id }, () =>
        this.demo.api.request<JobState>(
          'GET',
          `/v1/jobs/${encodeURIComponent(this.id)}`,
          undefined,
          this.demo.signal,
        ),
      );
    } catch (err) {
      throw isGone(err) ? new Halt('dropped') : err;
    }
  }

  private async obey(control: Control): Promise<void> {
    let current = control;
    for (;;) {
      if (current.cancelRequested) {
        await this.finish({ kind: 'cancelled', reason: 'Cancelled on request' });
        throw new Halt('cancelled');
      }
      if (!current.paused) return;
      current = await this.holdWhilePaused();
    }
  }

  /**
   * Report `paused`, then read the job every 500 ms until the pause is lifted
   * (report `resumed`) or a cancel is requested. Returns the control state to act on.
   */
  private async holdWhilePaused(): Promise<Control> {
    const control = await this.reportTransition('paused');
    if (control?.cancelRequested) return control;
    for (;;) {
      await sleep(PAUSE_POLL_MS, this.demo.signal);
      const state = await this.read();
      if (state.status === 'completed' || state.status === 'failed' || state.status === 'cancelled') {
        throw new Halt('dropped');
      }
      if (state.control.cancelRequested) return state.control;
      if (!state.control.paused) {
        return state.status === 'paused'
          ? ((await this.reportTransition('resumed')) ?? state.control)
          : state.control;
      }
    }
  }

  /** `paused` or `resumed`; a transition the job has already made is not an error. */
  private async reportTransition(kind: 'paused' | 'resumed'): Promise<Control | null> {
    try {
      return await this.report([{ kind }]);
    } catch (err) {
      if (err instanceof ApiError && err.code === ErrorCode.INVALID_TRANSITION) return null;
      throw err;
    }
  }
}

// ---------------------------------------------------------------------------
// The demo

type Outcome = 'completed' | 'failed' | 'stopped';

class Demo {
  readonly api: Api;
  readonly batcher: Batcher;
  readonly signal: AbortSignal;
  /** Jobs created and not yet finished, with whether they are a batch parent. */
  readonly active = new Map<string, 'job' | 'parent'>();

  private readonly controller = new AbortController();
  private readonly ticker = new Ticker();
  private readonly logger: DemoLogger;
  private readonly owner: string;
  private readonly speed: number;
  private readonly concurrency: number;
  /** Simulated seconds per tick. */
  private readonly dt: number;
  private lanes: Promise<void>[] = [];
  private stopping: Promise<void> | null = null;
  private mediaCount = 0;
  private failAt = -1;

  constructor(options: DemoOptions) {
    this.api = new Api(options.url, options.apiKey);
    this.signal = this.controller.signal;
    this.batcher = new Batcher(this.api, this.signal);
    this.logger = options.logger ?? noopLogger;
    this.owner = options.owner;
    const speed = options.speed ?? 1;
    this.speed = Number.isFinite(speed) && speed > 0 ? speed : 1;
    this.concurrency = Math.max(1, Math.floor(options.concurrency ?? 6));
    this.dt = (TICK_MS / 1000) * this.speed;
  }

  start(): void {
    // A playlist import runs two or three of its videos at once (never more than
    // concurrency - 1); the other slots run media jobs. The parent itself takes no
    // slot: the hub rolls it up from its children.
    const batchWidth = this.concurrency >= 3 ? Math.min(3, this.concurrency - 1) : 0;
    const mediaLanes = this.concurrency - batchWidth;
    for (let i = 0; i < mediaLanes; i++) this.lanes.push(this.lane(`media-${i}`, () => this.mediaLane(i)));
    if (batchWidth > 0) this.lanes.push(this.lane('batch', () => this.batchLane(batchWidth)));
    this.logger.info(
      { owner: this.owner, concurrency: this.concurrency, speed: this.speed },
      'demo workers started',
    );
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.controller.abort();
      this.ticker.stop();
      await this.batcher.stop();
      await Promise.allSettled(this.lanes);
      await this.reportStopped();
      this.logger.info({}, 'demo workers stopped');
    })();
    return this.stopping;
  }

  /** Real-time sleep that ends early (with `Halt`) when the demo stops. */
  sleep(ms: number): Promise<void> {
    return sleep(ms, this.signal);
  }

  /** Sleep for `ms` of simulated time. */
  private simSleep(ms: number): Promise<void> {
    return this.sleep(ms / this.speed);
  }

  /** Retry network errors, 429 and 5xx with exponential backoff (or `Retry-After`), a bounded number of times. */
  async retrying<T>(context: object, attempt: () => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (err) {
        if (!isRetryable(err) || n >= MAX_ATTEMPTS) throw err;
        const backoff = err.retryAfterMs ?? BACKOFF_BASE_MS * 2 ** (n - 1);
        const wait = Math.min(backoff, BACKOFF_MAX_MS) * random(0.8, 1.2);
        this.logger.warn(
          { ...context, attempt: n, code: err.code, err: err.message },
          'demo: retrying request',
        );
        await this.sleep(wait);
      }
    }
  }

  /**
   * Run a lane until the demo stops. A lane never rejects: an unexpected error is
   * logged and the lane starts over after a pause, so the demo keeps moving.
   */
  private async lane(name: string, run: () => Promise<void>): Promise<void> {
    for (;;) {
      try {
        await run();
        return;
      } catch (err) {
        if (err instanceof Halt || this.signal.aborted) return;
        this.logger.warn({ lane: name, err: messageOf(err) }, 'demo: lane failed; restarting');
      }
      try {
        await this.sleep(5_000);
      } catch {
        return;
      }
    }
  }

  /** Wait for the next tick; every running job reports at most once per tick. */
  private tick(): Promise<void> {
    return this.ticker.next();
  }

  private async create(input: CreateJobInput & { id: string }): Promise<void> {
    let retried = false;
    await this.retrying({ job: input.id }, async () => {
      try {
        await this.api.request<JobState>('POST', '/v1/jobs', input, this.signal);
      } catch (err) {
        // An earlier attempt was applied but its reply was lost: the job is ours.
        if (retried && err instanceof ApiError && err.code === ErrorCode.JOB_EXISTS) return;
        throw err;
      } finally {
        retried = true;
      }
    });
  }

  /**
   * Run one job's simulation, turning its ending into an outcome: a cancel, a
   * deletion or an abandoned job (logged) is `stopped`; only the demo stopping
   * propagates, as `Halt('aborted')`.
   */
  private async guard(id: string, run: () => Promise<Outcome>): Promise<Outcome> {
    try {
      return await run();
    } catch (err) {
      if (err instanceof Halt) {
        if (err.why === 'aborted') throw err;
        this.active.delete(id);
        return 'stopped';
      }
      this.active.delete(id);
      this.logger.warn({ job: id, err: messageOf(err) }, 'demo job abandoned');
      return 'stopped';
    }
  }

  /**
   * Advance over `seconds` of simulated time at a drifting pace, one report per
   * tick, until `until` (a fraction) is reached. `events` builds each report.
   */
  private async advance(
    worker: JobWorker,
    seconds: number,
    events: (fraction: number) => EventInput[],
    until = 1,
  ): Promise<void> {
    let elapsed = 0;
    let pace = random(0.85, 1.15);
    while (elapsed < seconds * until) {
      await this.tick();
      pace = wander(pace);
      elapsed = Math.min(seconds * until, elapsed + this.dt * pace);
      await worker.step(...events(elapsed / seconds));
    }
  }

  // -------------------------------------------------------------------------
  // Media pipeline

  private async mediaLane(index: number): Promise<void> {
    // Staggered starts, so that the jobs are not all in the same stage at once.
    await this.simSleep(index * 1_500 + random(0, 500));
    let retry: MediaSpec | null = null;
    let failures = 0;
    for (;;) {
      const spec: MediaSpec = retry ?? mediaSpec(this.nextFails());
      retry = null;
      const { id, outcome } = await this.runMedia(spec);
      if (outcome === 'failed' && id) {
        retry = { ...spec, failure: null, retryOf: id, attempt: spec.attempt + 1 };
        await this.simSleep(random(3_000, 5_000));
        continue;
      }
      // A hub that keeps refusing jobs is not hammered: back off in real time.
      failures = id ? 0 : failures + 1;
      if (failures > 0) await this.sleep(Math.min(30_000, 1_000 * 2 ** failures));
      else await this.simSleep(random(1_000, 3_000));
    }
  }

  /** One media job in FAILURE_EVERY fails, at a random position in each run of that many (never the first job). */
  private nextFails(): boolean {
    const slot = this.mediaCount++ % FAILURE_EVERY;
    if (slot === 0) this.failAt = randomInt(this.mediaCount === 1 ? 1 : 0, FAILURE_EVERY - 1);
    return slot === this.failAt;
  }

  /** Returns the job id (null when it could not be created) and how it ended. */
  private async runMedia(spec: MediaSpec): Promise<{ id: string | null; outcome: Outcome }> {
    const id = newId('media');
    const metadata: JsonObject = {
      source: spec.source,
      durationSeconds: spec.durationSeconds,
      resolution: spec.resolution,
      languages: spec.languages,
    };
    if (spec.retryOf) {
      metadata.retryOf = spec.retryOf;
      metadata.attempt = spec.attempt;
    }
    try {
      await this.create({
        id,
        owner: this.owner,
        name: `Process ${spec.file}`,
        stages: MEDIA_PLAN,
        metadata,
      });
    } catch (err) {
      if (err instanceof Halt) throw err;
      this.logger.warn({ job: id, err: messageOf(err) }, 'demo: could not create a job');
      return { id: null, outcome: 'stopped' };
    }
    this.active.set(id, 'job');
    const outcome = await this.guard(id, () => this.media(new JobWorker(this, id), spec));
    return { id, outcome };
  }

  private async media(w: JobWorker, spec: MediaSpec): Promise<Outcome> {
    const slug = spec.file.replace(/\.[^.]+$/, '');

    // Download: counted in bytes at ~40 MB/s ± 30%.
    const size = spec.sizeBytes;
    const downloadSeconds = size / (40 * MB);
    let lastBytes = 0;
    await w.step({ kind: 'stage', name: 'download', message: `Downloading ${spec.source}` });
    await this.advance(w, downloadSeconds, (f) => {
      const bytes = Math.min(size, Math.round(f * size));
      const rate = (bytes - lastBytes) / this.dt;
      lastBytes = bytes;
      return [
        {
          kind: 'progress',
          current: bytes,
          total: size,
          unit: 'bytes',
          message: `Downloading ${formatBytes(bytes)} of ${formatBytes(size)} (${formatBytes(rate)}/s)`,
        },
      ];
    });

    // Transcode: percent, with frames as the counted unit.
    const fps = spec.resolution === '1280x720' ? 25 : 30;
    const frames = spec.durationSeconds * fps;
    const height = spec.resolution.split('x')[1];
    const transcodeSeconds = random(10, 25);
    await w.step(
      { kind: 'stage', name: 'transcode', message: `Transcoding ${spec.resolution} to HLS` },
      { kind: 'log', message: `ffmpeg: encoding ${frames} frames to ${height}p, 720p and 480p renditions` },
    );
    const transcodeUntil = spec.failure?.stage === 'transcode' ? spec.failure.at : 1;
    await this.advance(
      w,
      transcodeSeconds,
      (f) => [
        {
          kind: 'progress',
          percent: round2(f * 100),
          current: Math.min(frames, Math.round(f * frames)),
          total: frames,
          unit: 'frames',
        },
      ],
      transcodeUntil,
    );
    if (spec.failure?.stage === 'transcode') {
      const frame = Math.round(transcodeUntil * frames);
      await w.step({
        kind: 'log',
        level: 'error',
        message: `ffmpeg exited with code 1: Invalid data found when processing input (frame ${frame})`,
      });
      await w.finish({
        kind: 'failed',
        error: {
          code: 'TRANSCODE_FAILED',
          message: `Transcoding failed at frame ${frame}: corrupt packet in the input stream`,
          retryable: true,
        },
      });
      return 'failed';
    }

    // Transcribe: percent, with log lines for the detected language and segment counts.
    const segments = Math.max(20, Math.round(spec.durationSeconds / 8));
    const transcribeSeconds = random(8, 18);
    await w.step({ kind: 'stage', name: 'transcribe', message: 'Transcribing audio' });
    const transcribeUntil = spec.failure?.stage === 'transcribe' ? spec.failure.at : 1;
    let detected = false;
    let quarter = 0;
    await this.advance(
      w,
      transcribeSeconds,
      (f) => {
        const done = Math.min(segments, Math.floor(f * segments));
        const events: EventInput[] = [
          {
            kind: 'progress',
            percent: round2(f * 100),
            message: `Transcribing segment ${done} of ${segments}`,
          },
        ];
        if (!detected && f >= 0.05) {
          detected = true;
          events.push({
            kind: 'log',
            message: `Detected language: en (confidence ${random(0.9, 0.99).toFixed(2)})`,
          });
        }
        if (Math.floor(f * 4) > quarter && f < 1) {
          quarter = Math.floor(f * 4);
          events.push({ kind: 'log', message: `Transcribed ${done} of ${segments} segments` });
        }
        return events;
      },
      transcribeUntil,
    );
    if (spec.failure?.stage === 'transcribe') {
      await w.step({
        kind: 'log',
        level: 'warn',
        message: 'Speech recognition service did not answer in 120 s',
      });
      await w.finish({
        kind: 'failed',
        error: { code: 'ASR_TIMEOUT', message: 'Speech recognition timed out after 120 s', retryable: true },
      });
      return 'failed';
    }
    await w.step(
      { kind: 'log', message: `Transcribed ${segments} of ${segments} segments` },
      { kind: 'metadata', metadata: { detectedLanguage: 'en', segments } },
    );

    // Translate: short, one language after the other.
    const targets = spec.languages.filter((l) => l !== 'en');
    const translateSeconds = random(2, 5);
    await w.step({
      kind: 'stage',
      name: 'translate',
      message: `Translating subtitles to ${targets.join(', ')}`,
    });
    await this.advance(w, translateSeconds, (f) => {
      const language = targets[Math.min(targets.length - 1, Math.floor(f * targets.length))]!;
      return [
        {
          kind: 'progress',
          percent: round2(f * 100),
          message: `Translating subtitles to ${LANGUAGE_NAMES[language] ?? language}`,
        },
      ];
    });

    const base = `https://cdn.example.com/media/${slug}`;
    const result: Json = {
      url: `${base}/index.m3u8`,
      subtitles: spec.languages.map((l) => `${base}/subtitles.${l}.vtt`),
    };
    await w.finish(
      { kind: 'progress', percent: 100, message: `Published to ${base}/index.m3u8` },
      { kind: 'completed', result },
    );
    return 'completed';
  }

  // -------------------------------------------------------------------------
  // Playlist import: a batch parent whose progress the hub rolls up from its children

  private async batchLane(maxWidth: number): Promise<void> {
    await this.simSleep(random(300, 800));
    let failures = 0;
    for (;;) {
      const created = await this.runBatch(randomInt(Math.min(2, maxWidth), maxWidth));
      failures = created ? 0 : failures + 1;
      if (failures > 0) await this.sleep(Math.min(30_000, 1_000 * 2 ** failures));
      else await this.simSleep(random(2_000, 4_000));
    }
  }

  /** Returns false when the parent could not be created. */
  private async runBatch(width: number): Promise<boolean> {
    const title = pick(PLAYLISTS);
    const slug = title.toLowerCase().replace(/[^a-z0-9]+/g, '-');
    const listId = randomBytes(6).toString('base64url');
    const parentId = newId('batch');
    try {
      await this.create({
        id: parentId,
        owner: this.owner,
        name: `Import playlist "${title}" (${BATCH_SIZE} videos)`,
        metadata: { source: `https://videos.example.com/playlist?list=${listId}`, videos: BATCH_SIZE },
      });
    } catch (err) {
      if (err instanceof Halt) throw err;
      this.logger.warn({ job: parentId, err: messageOf(err) }, 'demo: could not create a batch');
      return false;
    }
    this.active.set(parentId, 'parent');

    // Every child is created before any runs: the hub finishes the parent once all
    // of its children have, so a parent with only its first child would end early.
    const children: { id: string; file: string; size: number }[] = [];
    for (let i = 1; i <= BATCH_SIZE; i++) {
      const file = `${slug}-${pad(i, 2)}.mp4`;
      const child = { id: newId('import'), file, size: Math.round(random(40, 320) * MB) };
      try {
        await this.create({
          id: child.id,
          owner: this.owner,
          parent: parentId,
          name: `Import video ${i} of ${BATCH_SIZE}: ${file}`,
          metadata: {
            source: `https://videos.example.com/watch?v=${randomBytes(6).toString('base64url')}`,
            index: i,
          },
        });
      } catch (err) {
        if (err instanceof Halt) throw err;
        this.logger.warn({ job: child.id, err: messageOf(err) }, 'demo: could not create a batch item');
        break;
      }
      this.active.set(child.id, 'job');
      children.push(child);
    }

    const parent = new JobWorker(this, parentId);
    const bytes = children.reduce((sum, c) => sum + c.size, 0);
    try {
      await parent.report([
        {
          kind: 'log',
          message: `Resolved playlist: ${children.length} videos, ${formatBytes(bytes)} in all`,
        },
      ]);
    } catch (err) {
      if (err instanceof Halt && err.why === 'aborted') throw err;
      if (!(err instanceof Halt))
        this.logger.warn({ job: parentId, err: messageOf(err) }, 'demo: batch log failed');
    }
    let next = 0;
    let launching = true;
    let parentPaused = false;
    let lastCheck = Date.now();
    const running = new Set<Promise<void>>();
    try {
      while ((launching && next < children.length) || running.size > 0) {
        while (launching && !parentPaused && running.size < width && next < children.length) {
          const child = children[next++]!;
          // Only the demo stopping ends a child with an error, and the lane learns of that on its own.
          const run: Promise<void> = this.guard(child.id, () => this.importVideo(child))
            .then(
              () => {},
              () => {},
            )
            .finally(() => running.delete(run));
          running.add(run);
        }
        // Woken by a finished child or by the next tick, whichever comes first.
        await Promise.race([...running, this.tick()]);
        if (!launching || Date.now() - lastCheck < 1_000) continue;
        lastCheck = Date.now();
        // The parent has no progress of its own to report, so its control state is read once a second.
        const state = await this.checkParent(parent, parentPaused);
        if (state === 'stop') launching = false;
        else parentPaused = state === 'paused';
      }
    } finally {
      // Settle the children still running (when the demo stops) before the lane ends.
      await Promise.allSettled([...running]);
    }
    this.active.delete(parentId);
    return true;
  }

  /**
   * Honour the parent's control state: a cancel is acknowledged (the hub has
   * already passed it on to the children); a pause holds back the next children.
   */
  private async checkParent(parent: JobWorker, paused: boolean): Promise<'stop' | 'paused' | 'running'> {
    try {
      const state = await parent.read();
      if (state.status === 'completed' || state.status === 'failed' || state.status === 'cancelled')
        return 'stop';
      if (state.control.cancelRequested) {
        await parent.finish({ kind: 'cancelled', reason: 'Cancelled on request' });
        return 'stop';
      }
      if (state.control.paused && !paused) {
        await parent.report([{ kind: 'paused', reason: 'No further videos start while paused' }]);
        return 'paused';
      }
      if (!state.control.paused && paused) {
        if (state.status === 'paused') await parent.report([{ kind: 'resumed' }]);
        return 'running';
      }
      return paused ? 'paused' : 'running';
    } catch (err) {
      if (err instanceof Halt && err.why === 'aborted') throw err;
      if (err instanceof ApiError && err.code === ErrorCode.INVALID_TRANSITION)
        return paused ? 'running' : 'paused';
      if (!(err instanceof Halt))
        this.logger.warn({ job: parent.id, err: messageOf(err) }, 'demo: batch check failed');
      return 'stop';
    }
  }

  private async importVideo(child: { id: string; file: string; size: number }): Promise<Outcome> {
    const w = new JobWorker(this, child.id);
    const seconds = child.size / (random(20, 35) * MB);
    await this.advance(w, seconds, (f) => [
      {
        kind: 'progress',
        current: Math.min(child.size, Math.round(f * child.size)),
        total: child.size,
        unit: 'bytes',
        message: `Fetching ${child.file}`,
      },
    ]);
    await w.finish(
      { kind: 'progress', current: child.size, message: `Imported ${child.file}` },
      { kind: 'completed', result: { url: `https://cdn.example.com/imports/${child.file}` } },
    );
    return 'completed';
  }

  // -------------------------------------------------------------------------

  /**
   * Mark the jobs still open as cancelled ("demo stopped"), so that they do not
   * stay `running` forever in the hub. One attempt, bounded in time: the hub may
   * be shutting down too.
   */
  private async reportStopped(): Promise<void> {
    if (this.active.size === 0) return;
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), FINAL_REPORT_MS);
    const reason = 'Demo stopped';
    try {
      // Cancelling a parent also cancels its children that have not started.
      const parents = [...this.active].filter(([, kind]) => kind === 'parent').map(([id]) => id);
      await Promise.allSettled(
        parents.map((id) =>
          this.api.request('POST', `/v1/jobs/${encodeURIComponent(id)}/cancel`, { reason }, deadline.signal),
        ),
      );
      const events = [...this.active.keys()].map((job) => ({ job, kind: 'cancelled', reason }));
      await this.api.request('POST', '/v1/events', { events }, deadline.signal);
    } catch (err) {
      if (!(err instanceof Halt))
        this.logger.warn({ err: messageOf(err) }, 'demo: could not mark jobs stopped');
    } finally {
      clearTimeout(timer);
      this.active.clear();
    }
  }
}
