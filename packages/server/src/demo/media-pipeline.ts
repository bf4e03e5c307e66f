/**
 * The media pipeline: download, transcode, transcribe and translate one file,
 * with stage weights, counted units, log lines, metadata, a result, and now and
 * then a retryable failure that is retried as a new job.
 */
import type { Json, JsonObject } from '@headway/protocol';
import type { JobHandle } from '@headway/worker';
import {
  formatBytes,
  LANGUAGE_NAMES,
  MB,
  type MediaSpec,
  mediaSpec,
  newId,
  random,
  randomInt,
  round2,
} from './fixtures.js';
import { advance, messageOf, nextTick, type Outcome, runJob, type Simulation } from './simulation.js';

export const MEDIA_PLAN = [
  { name: 'download', weight: 2 },
  { name: 'transcode', weight: 4 },
  { name: 'transcribe', weight: 3 },
  { name: 'translate', weight: 1 },
];
/** One media job in this many fails (a retry never does). */
export const FAILURE_EVERY = 6;

/** Which media jobs fail: one in FAILURE_EVERY, at a random place in each run of that many (never the first job). */
class FailureSchedule {
  private count = 0;
  private failAt = -1;

  next(): boolean {
    const slot = this.count++ % FAILURE_EVERY;
    if (slot === 0) this.failAt = randomInt(this.count === 1 ? 1 : 0, FAILURE_EVERY - 1);
    return slot === this.failAt;
  }
}

/** Start `count` lanes of media jobs, one after the other in each, sharing one failure schedule. */
export function mediaLanes(sim: Simulation, count: number): (() => Promise<void>)[] {
  const failures = new FailureSchedule();
  return Array.from({ length: count }, (_, index) => () => mediaLane(sim, index, failures));
}

async function mediaLane(sim: Simulation, index: number, failures: FailureSchedule): Promise<void> {
  // Staggered starts, so that the jobs are not all in the same stage at once.
  await sim.simSleep(index * 1_500 + random(0, 500));
  let retry: MediaSpec | null = null;
  let refused = 0;
  for (;;) {
    const spec: MediaSpec = retry ?? mediaSpec(failures.next());
    retry = null;
    const { id, outcome } = await runMediaJob(sim, spec);
    if (outcome === 'failed' && id) {
      retry = { ...spec, failure: null, retryOf: id, attempt: spec.attempt + 1 };
      await sim.simSleep(random(3_000, 5_000));
      continue;
    }
    // A hub that keeps refusing jobs is not hammered: back off in real time.
    refused = id ? 0 : refused + 1;
    if (refused > 0) await sim.sleep(Math.min(30_000, 1_000 * 2 ** refused));
    else await sim.simSleep(random(1_000, 3_000));
  }
}

/** Returns the job id (null when it could not be created) and how it ended. */
async function runMediaJob(
  sim: Simulation,
  spec: MediaSpec,
): Promise<{ id: string | null; outcome: Outcome }> {
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
  let job: JobHandle;
  try {
    job = await sim.create({ id, name: `Process ${spec.file}`, stages: MEDIA_PLAN, metadata });
  } catch (err) {
    if (sim.signal.aborted) throw err;
    sim.logger.warn({ job: id, err: messageOf(err) }, 'demo: could not create a job');
    return { id: null, outcome: 'stopped' };
  }
  return { id, outcome: await runJob(sim, job, () => processMedia(sim, job, spec)) };
}

async function processMedia(sim: Simulation, job: JobHandle, spec: MediaSpec): Promise<Outcome> {
  await download(sim, job, spec);
  if (!(await transcode(sim, job, spec))) return 'failed';
  if (!(await transcribe(sim, job, spec))) return 'failed';
  await translate(sim, job, spec);
  const base = `https://cdn.example.com/media/${spec.file.replace(/\.[^.]+$/, '')}`;
  const result: Json = {
    url: `${base}/index.m3u8`,
    subtitles: spec.languages.map((l) => `${base}/subtitles.${l}.vtt`),
  };
  job.progress({ percent: 100 }, `Published to ${base}/index.m3u8`);
  await job.complete(result);
  return 'completed';
}

/** Counted in bytes at ~40 MB/s ± 30%. */
async function download(sim: Simulation, job: JobHandle, spec: MediaSpec): Promise<void> {
  const size = spec.sizeBytes;
  let lastBytes = 0;
  job.stage('download', `Downloading ${spec.source}`);
  await advance(sim, job, size / (40 * MB), (f) => {
    const bytes = Math.min(size, Math.round(f * size));
    const rate = (bytes - lastBytes) / sim.dt;
    lastBytes = bytes;
    job.progress(
      { current: bytes, total: size, unit: 'bytes' },
      `Downloading ${formatBytes(bytes)} of ${formatBytes(size)} (${formatBytes(rate)}/s)`,
    );
  });
}

/** Percent, with frames as the counted unit. Returns false when this run fails here. */
async function transcode(sim: Simulation, job: JobHandle, spec: MediaSpec): Promise<boolean> {
  const frames = spec.durationSeconds * (spec.resolution === '1280x720' ? 25 : 30);
  const height = spec.resolution.split('x')[1];
  // A stage begins on a tick of its own, so that no tick reports more than one step.
  await nextTick(sim, job);
  job.stage('transcode', `Transcoding ${spec.resolution} to HLS`);
  job.log(`ffmpeg: encoding ${frames} frames to ${height}p, 720p and 480p renditions`);
  const fails = spec.failure?.stage === 'transcode';
  const until = fails ? spec.failure!.at : 1;
  await advance(
    sim,
    job,
    random(10, 25),
    (f) => {
      const current = Math.min(frames, Math.round(f * frames));
      job.progress({ percent: round2(f * 100), current, total: frames, unit: 'frames' });
    },
    until,
  );
  if (!fails) return true;
  const frame = Math.round(until * frames);
  job.log(`ffmpeg exited with code 1: Invalid data found when processing input (frame ${frame})`, 'error');
  await job.fail(`Transcoding failed at frame ${frame}: corrupt packet in the input stream`, {
    code: 'TRANSCODE_FAILED',
    retryable: true,
  });
  return false;
}

/** Percent, with log lines for the detected language and segment counts. Returns false when this run fails here. */
async function transcribe(sim: Simulation, job: JobHandle, spec: MediaSpec): Promise<boolean> {
  const segments = Math.max(20, Math.round(spec.durationSeconds / 8));
  await nextTick(sim, job);
  job.stage('transcribe', 'Transcribing audio');
  const fails = spec.failure?.stage === 'transcribe';
  let detected = false;
  let quarter = 0;
  await advance(
    sim,
    job,
    random(8, 18),
    (f) => {
      const done = Math.min(segments, Math.floor(f * segments));
      job.progress({ percent: round2(f * 100) }, `Transcribing segment ${done} of ${segments}`);
      if (!detected && f >= 0.05) {
        detected = true;
        job.log(`Detected language: en (confidence ${random(0.9, 0.99).toFixed(2)})`);
      }
      if (Math.floor(f * 4) > quarter && f < 1) {
        quarter = Math.floor(f * 4);
        job.log(`Transcribed ${done} of ${segments} segments`);
      }
    },
    fails ? spec.failure!.at : 1,
  );
  if (fails) {
    job.log('Speech recognition service did not answer in 120 s', 'warn');
    await job.fail('Speech recognition timed out after 120 s', { code: 'ASR_TIMEOUT', retryable: true });
    return false;
  }
  await nextTick(sim, job);
  job.log(`Transcribed ${segments} of ${segments} segments`);
  job.metadata({ detectedLanguage: 'en', segments });
  return true;
}

/** Short, one language after the other. */
async function translate(sim: Simulation, job: JobHandle, spec: MediaSpec): Promise<void> {
  const targets = spec.languages.filter((l) => l !== 'en');
  await nextTick(sim, job);
  job.stage('translate', `Translating subtitles to ${targets.join(', ')}`);
  await advance(sim, job, random(2, 5), (f) => {
    const language = targets[Math.min(targets.length - 1, Math.floor(f * targets.length))]!;
    job.progress(
      { percent: round2(f * 100) },
      `Translating subtitles to ${LANGUAGE_NAMES[language] ?? language}`,
    );
  });
}
