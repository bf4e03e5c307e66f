/**
 * What a demo pipeline needs from the runner, and the loop that moves a job
 * forward one tick at a time.
 */
import type { CreateJobInput } from '@headway/protocol';
import type { HeadwayWorker, JobHandle } from '@headway/worker';
import { random } from './fixtures.js';
import type { DemoLogger } from './options.js';

/** A job to create: the owner and parent come from the runner. */
export type NewJob = Omit<CreateJobInput, 'owner' | 'parent'> & { id: string };

/** How a job's run ended, as its pipeline sees it. */
export type Outcome = 'completed' | 'failed' | 'stopped';

/** The runner, as the pipelines see it. */
export interface Simulation {
  readonly worker: HeadwayWorker;
  readonly owner: string;
  readonly logger: DemoLogger;
  /** Aborted when the demo stops. */
  readonly signal: AbortSignal;
  /** Simulated seconds per tick. */
  readonly dt: number;
  /** The next tick; rejects when the demo stops or `job` ends (cancelled, deleted). */
  tick(job?: JobHandle): Promise<void>;
  /** Wait `ms` of simulated time; rejects when the demo stops. */
  simSleep(ms: number): Promise<void>;
  /** Wait `ms` of real time; rejects when the demo stops. */
  sleep(ms: number): Promise<void>;
  /**
   * Create a job for the demo's owner: under `parent` when given (a batch
   * item), as a batch parent when `batch` is set. The runner keeps the handle,
   * so that stopping the demo can mark the job cancelled.
   */
  create(input: NewJob, place?: { parent?: JobHandle; batch?: boolean }): Promise<JobHandle>;
  /** Forget a job whose run is over. */
  release(job: JobHandle): void;
}

/** A pace that drifts within ±30%, so that the rate and the ETA visibly move. */
function wander(pace: number): number {
  return Math.min(1.3, Math.max(0.7, pace + random(-0.12, 0.12)));
}

/**
 * Wait for the next tick, then hold the job while it is paused; throws once it
 * is cancelled (the worker acknowledges both). One tick's reports go out in one
 * request, so a cancel finds at most that one in flight.
 */
export async function nextTick(sim: Simulation, job: JobHandle): Promise<void> {
  await sim.tick(job);
  await job.checkpoint();
}

/**
 * Advance over `seconds` of simulated time at a drifting pace, one step per
 * tick (see `nextTick`), until `until` (a fraction) is reached; `step` reports each one.
 */
export async function advance(
  sim: Simulation,
  job: JobHandle,
  seconds: number,
  step: (fraction: number) => void,
  until = 1,
): Promise<void> {
  let elapsed = 0;
  let pace = random(0.85, 1.15);
  while (elapsed < seconds * until) {
    await nextTick(sim, job);
    pace = wander(pace);
    elapsed = Math.min(seconds * until, elapsed + sim.dt * pace);
    step(elapsed / seconds);
  }
}

/**
 * Run one job's simulation and turn its ending into an outcome: a cancel, a
 * deletion or an abandoned job (logged) is `stopped`; only the demo stopping
 * propagates, so that the lane ends.
 */
export async function runJob(sim: Simulation, job: JobHandle, run: () => Promise<Outcome>): Promise<Outcome> {
  try {
    return await run();
  } catch (err) {
    if (sim.signal.aborted) throw err;
    // The worker has already acknowledged a cancel, and a deleted job needs nothing.
    if (!job.signal.aborted) sim.logger.warn({ job: job.id, err: messageOf(err) }, 'demo job abandoned');
    return 'stopped';
  } finally {
    sim.release(job);
  }
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
