import { type ChildProcess, spawn } from 'node:child_process';
import { hostname } from 'node:os';
import type { Writable } from 'node:stream';
import type { StageInput } from '@headway/protocol';
import { ErrorCode } from '@headway/protocol/codes';
import { WorkerErrorCode } from './errors.js';
import type { JobHandle } from './job-handle.js';
import type { HeadwayWorkerOptionsInput } from './options.js';
import { OutputParser, type ParsedLine } from './output-parser.js';
import { HeadwayWorker } from './worker.js';

export interface RunCommandOptions {
  /** The program to run, and its arguments (no shell). */
  command: string;
  args?: string[];
  /** Owner of the job to create. Required unless `job` is given. */
  owner?: string;
  /** Name of the job to create. Default: the command line. */
  name?: string;
  /** Report for this existing job instead of creating one. */
  job?: string;
  /** The stage plan; the first stage starts with the command. */
  stages?: StageInput[];
  /** Extra stage markers; `::stage <name>` lines always mark a stage. */
  stageMarkers?: RegExp[];
  /** Extra progress patterns (see `OutputParser`). */
  progressPatterns?: RegExp[];
  /** Media length for ffmpeg output, seconds (read from ffmpeg's `Duration:` line when absent). */
  duration?: number;
  /** Expected output size for ffmpeg's `total_size`, bytes. */
  totalSize?: number;
  /** Output lines reported as `log` events per second at most (burst of twice that). Default 10. */
  logRate?: number;
  /** Time between SIGTERM and SIGKILL after a cancel, ms. Default 10 s. */
  graceMs?: number;
  /** Working directory and environment of the command. */
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Where the command's output is copied. Default: this process's stdout and stderr. */
  stdout?: Writable;
  stderr?: Writable;
  /** Pass SIGINT, SIGTERM and SIGHUP received by this process on to the command. Default true. */
  forwardSignals?: boolean;
  /** The Headway worker, or its options. Default: one from `HEADWAY_URL` and `HEADWAY_API_KEY`. */
  worker?: HeadwayWorker | HeadwayWorkerOptionsInput;
  /** Called with the job's id once it exists, before the command starts (e.g. to say how to watch it). */
  onJob?: (id: string) => void;
}

export interface RunCommandResult {
  /** The command's exit code; 128 + the signal number when a signal ended it; 127 when it could not start. */
  exitCode: number;
  /** The signal that ended the command, if one did. */
  signal: NodeJS.Signals | null;
  /** How the job ended in Headway. */
  status: 'completed' | 'failed' | 'cancelled';
  jobId: string;
}

export const runDefaults = {
  logRate: 10,
  graceMs: 10_000, // 10 seconds
} as const;

/** Lines of output kept for the error of a failed command. */
const TAIL_LINES = 20;
/** Characters of that tail at most. */
const TAIL_CHARS = 4000;
/** A percent falling below this after reaching `STAGE_DONE` starts the plan's next stage. */
const STAGE_RESTART = 10;
const STAGE_DONE = 90;
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGKILL: 9,
  SIGTERM: 15,
};

/**
 * Run a command as a Headway job: its output is copied through and read for
 * progress, stages and log lines; its exit code decides the outcome (0:
 * completed; otherwise failed, with the tail of its stderr). A cancel sends
 * SIGTERM to the command's process group, then SIGKILL after `graceMs`; a
 * pause stops it (SIGSTOP) until the resume (SIGCONT).
 *
 * The command runs in its own process group with stdin closed, so that a
 * cancel reaches every process it started.
 */
export async function runCommand(options: RunCommandOptions): Promise<RunCommandResult> {
  const args = options.args ?? [];
  const commandLine = [options.command, ...args].map(quote).join(' ');
  if (options.job === undefined && !options.owner) {
    throw Object.assign(new TypeError('runCommand: "owner" is required unless "job" is given'), {
      code: WorkerErrorCode.INVALID_OPTION,
      option: 'owner',
    });
  }
  const ownsWorker = !(options.worker instanceof HeadwayWorker);
  const worker = options.worker instanceof HeadwayWorker ? options.worker : new HeadwayWorker(options.worker);
  const out = options.stdout ?? process.stdout;
  const err = options.stderr ?? process.stderr;
  const graceMs = options.graceMs ?? runDefaults.graceMs;
  const logRate = options.logRate ?? runDefaults.logRate;

  let job: JobHandle;
  try {
    const create = (id?: string) =>
      worker.createJob({
        id,
        owner: options.owner!,
        name: (options.name ?? commandLine).slice(0, 256),
        stages: options.stages,
      });
    if (options.job === undefined) job = await create();
    else if (options.owner === undefined) job = await worker.open(options.job);
    else {
      // With an owner, `job` is the id to create the job under — or to report for,
      // when a previous attempt or a back end already created it.
      job = await create(options.job).catch((error: unknown) => {
        if ((error as { code?: string }).code === ErrorCode.JOB_EXISTS) return worker.open(options.job!);
        throw error;
      });
    }
  } catch (error) {
    if (ownsWorker) await worker.close();
    throw error;
  }

  options.onJob?.(job.id);
  const plan = (options.stages ?? []).map((s) => s.name);
  const parser = new OutputParser({
    progressPatterns: options.progressPatterns,
    stageMarkers: options.stageMarkers,
    duration: options.duration,
    totalSize: options.totalSize,
  });
  const logs = new LogBudget(logRate, (message, level) => job.log(message, level));
  const tail: string[] = [];
  const outTail: string[] = [];
  let stageIndex = plan.length > 0 ? 0 : -1;
  let lastPercent = 0;
  let interrupted: NodeJS.Signals | null = null;

  let child: ChildProcess;
  try {
    child = spawn(options.command, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: process.platform !== 'win32',
    });
  } catch (error) {
    return finishUnstarted(error);
  }
  const started = await new Promise<Error | null>((resolve) => {
    child.once('spawn', () => resolve(null));
    child.once('error', (e) => resolve(e));
  });
  if (started) return finishUnstarted(started);

  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      // The negative pid signals the whole process group the command leads.
      if (process.platform !== 'win32') process.kill(-child.pid!, signal);
      else child.kill(signal);
    } catch {
      try {
        child.kill(signal);
      } catch {
        // Already gone.
      }
    }
  };

  job.metadata({ run: { command: commandLine.slice(0, 1024), host: hostname(), pid: child.pid ?? null } });
  if (plan.length > 0) job.stage(plan[0]!);

  // Cancel: SIGTERM now, SIGKILL after the grace period.
  let killTimer: NodeJS.Timeout | null = null;
  const onAbort = () => {
    signalGroup('SIGTERM');
    signalGroup('SIGCONT'); // a paused command must run to handle its SIGTERM
    killTimer = setTimeout(() => signalGroup('SIGKILL'), graceMs);
  };
  job.signal.addEventListener('abort', onAbort, { once: true });

  // Pause: stop the process group; `checkpoint()` acknowledges and waits for the resume.
  let pausing = false;
  const offControl = job.onControl((control) => {
    if (!control.paused || pausing || job.ended || process.platform === 'win32') return;
    pausing = true;
    signalGroup('SIGSTOP');
    job
      .checkpoint()
      .catch(() => {
        // Cancelled while paused: onAbort has sent SIGTERM and SIGCONT.
      })
      .finally(() => {
        pausing = false;
        if (!job.signal.aborted) signalGroup('SIGCONT');
      });
  });

  const forward = (signal: NodeJS.Signals) => {
    if (interrupted) {
      signalGroup('SIGKILL');
      return;
    }
    interrupted = signal;
    signalGroup(signal);
    signalGroup('SIGCONT');
  };
  if (options.forwardSignals ?? true) for (const s of SIGNALS) process.on(s, forward);

  const handleLine = (line: string, stream: 'stdout' | 'stderr') => {
    const parsed: ParsedLine = parser.parse(line);
    if (job.ended) return;
    switch (parsed.type) {
      case 'progress': {
        const percent = percentOf(parsed.report);
        // A tool starting its next phase from 0 % moves the plan on.
        if (
          percent !== undefined &&
          stageIndex >= 0 &&
          stageIndex < plan.length - 1 &&
          lastPercent >= STAGE_DONE &&
          percent < STAGE_RESTART
        ) {
          job.stage(plan[++stageIndex]!);
        }
        if (percent !== undefined) lastPercent = percent;
        job.progress(parsed.report, parsed.message);
        return;
      }
      case 'stage': {
        const index = plan.indexOf(parsed.name);
        if (plan.length > 0 && index === -1) {
          logs.push(`stage "${parsed.name}" is not in the plan (${plan.join(', ')})`, 'warn');
          return;
        }
        if (index >= 0) stageIndex = index;
        lastPercent = 0;
        job.stage(parsed.name);
        return;
      }
      case 'log': {
        const keep = stream === 'stderr' ? tail : outTail;
        keep.push(parsed.message);
        if (keep.length > TAIL_LINES) keep.shift();
        logs.push(parsed.message, 'info');
        return;
      }
      default:
        return;
    }
  };

  const readers = [
    readLines(child.stdout!, out, (line) => handleLine(line, 'stdout')),
    readLines(child.stderr!, err, (line) => handleLine(line, 'stderr')),
  ];
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
    child.once('close', (c, s) => resolve([c, s]));
  });
  await Promise.all(readers);

  if (killTimer) clearTimeout(killTimer);
  job.signal.removeEventListener('abort', onAbort);
  offControl();
  if (options.forwardSignals ?? true) for (const s of SIGNALS) process.off(s, forward);
  logs.close();

  const exitCode = code ?? 128 + (SIGNAL_NUMBERS[signal ?? 'SIGTERM'] ?? 15);
  let status: RunCommandResult['status'];
  try {
    if (job.signal.aborted && (job.signal.reason as { code?: unknown })?.code === WorkerErrorCode.CANCELLED) {
      status = 'cancelled';
    } else if (interrupted) {
      status = 'cancelled';
      await job.cancelled(`interrupted by ${interrupted}`);
    } else if (code === 0) {
      status = 'completed';
      await job.complete({ exitCode: 0 });
    } else {
      status = 'failed';
      const lines = tail.length > 0 ? tail : outTail;
      const what = signal ? `killed by ${signal}` : `exited with code ${code}`;
      const message = lines.length > 0 ? `${what}:\n${lines.join('\n')}` : what;
      await job.fail(
        { code: signal ? `SIGNAL_${signal}` : `EXIT_${code}`, message: message.slice(-TAIL_CHARS) },
        { retryable: false },
      );
    }
  } finally {
    if (ownsWorker) await worker.close();
    else await worker.flush();
  }
  return { exitCode, signal, status, jobId: job.id };

  async function finishUnstarted(error: unknown): Promise<RunCommandResult> {
    const e = error as NodeJS.ErrnoException;
    err.write(`headway run: cannot start ${options.command}: ${e?.message ?? e}\n`);
    try {
      await job.fail({
        code: `SPAWN_${e?.code ?? 'FAILED'}`,
        message: `cannot start ${commandLine}: ${e?.message ?? e}`,
      });
    } finally {
      if (ownsWorker) await worker.close();
    }
    return { exitCode: 127, signal: null, status: 'failed', jobId: job.id };
  }
}

function percentOf(report: { percent?: number; current?: number; total?: number }): number | undefined {
  if (report.percent !== undefined) return report.percent;
  if (report.current !== undefined && report.total) return (report.current / report.total) * 100;
  return undefined;
}

/** Copy a stream to `copy` and call `onLine` for each line; `\r` ends a line too (progress bars). */
function readLines(
  stream: NodeJS.ReadableStream,
  copy: Writable,
  onLine: (line: string) => void,
): Promise<void> {
  return new Promise((resolve) => {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      copy.write(chunk);
      const parts = (partial + chunk).split(/\r\n|\r|\n/);
      partial = parts.pop() ?? '';
      // A line that never ends (a spinner?) is cut, so memory stays bounded.
      if (partial.length > 64 * 1024) {
        parts.push(partial);
        partial = '';
      }
      for (const line of parts) onLine(line);
    });
    stream.on('end', () => {
      if (partial !== '') onLine(partial);
      resolve();
    });
    stream.on('error', () => resolve());
  });
}

/**
 * Rate limit for log lines: `rate` a second with a burst of twice that. Lines
 * over the budget are counted, and the count is logged once the budget allows.
 */
class LogBudget {
  private tokens: number;
  private refilledAt = Date.now();
  private skipped = 0;

  constructor(
    private readonly rate: number,
    private readonly write: (message: string, level?: 'info' | 'warn') => void,
  ) {
    this.tokens = rate * 2;
  }

  push(message: string, level: 'info' | 'warn'): void {
    if (this.rate <= 0) return;
    const now = Date.now();
    this.tokens = Math.min(this.rate * 2, this.tokens + ((now - this.refilledAt) / 1000) * this.rate);
    this.refilledAt = now;
    if (this.tokens < 1) {
      this.skipped++;
      return;
    }
    if (this.skipped > 0) {
      if (this.tokens < 2) {
        this.skipped++;
        return;
      }
      this.tokens -= 1;
      this.write(`… ${this.skipped} lines not logged (over ${this.rate} lines a second)`, 'info');
      this.skipped = 0;
    }
    this.tokens -= 1;
    this.write(message, level);
  }

  close(): void {
    if (this.skipped > 0) this.write(`… ${this.skipped} lines not logged (over ${this.rate} lines a second)`);
    this.skipped = 0;
  }
}

function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}
