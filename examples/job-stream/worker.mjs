/**
 * A worker like the music-transcription service's (seed 2): download, source
 * separation, transcription, MusicXML export, reporting every 5–10 % with a
 * human-readable message. `--fail` makes the separation run out of GPU memory,
 * a retryable failure, to see the seed's `error` message.
 *
 *   node examples/job-stream/worker.mjs <job-id> [--fail]
 */
import { isMain, report, sleep } from '../lib/hub.mjs';

export const STAGES = ['download', 'separation', 'transcription', 'musicxml'];
const STEMS = ['vocals', 'drums', 'bass', 'other'];

export async function runWorker(jobId, { fail = false } = {}) {
  const started = Date.now();
  await report(jobId, { kind: 'stage', name: 'download', message: 'Downloading audio' });
  for (const percent of [50, 100]) {
    await sleep(500);
    await report(jobId, { kind: 'progress', percent });
  }
  await report(jobId, { kind: 'stage', name: 'separation', message: 'Separating stems' });
  for (const [i, stem] of STEMS.entries()) {
    await sleep(700);
    if (fail && i === 2) {
      await report(jobId, {
        kind: 'failed',
        error: { code: 'GPU_OOM', message: 'GPU out of memory during source separation', retryable: true },
      });
      return;
    }
    await report(jobId, {
      kind: 'progress',
      percent: ((i + 1) / STEMS.length) * 100,
      message: `Separated ${stem} stem (${i + 1}/${STEMS.length})`,
    });
  }
  await report(jobId, { kind: 'stage', name: 'transcription', message: 'Transcribing notes' });
  for (let percent = 10; percent <= 100; percent += 10) {
    await sleep(300);
    await report(jobId, { kind: 'progress', percent });
  }
  await report(jobId, { kind: 'stage', name: 'musicxml', message: 'Writing MusicXML' });
  await sleep(300);
  await report(jobId, {
    kind: 'completed',
    result: {
      result_url: `/api/v1/scores/${jobId}`,
      duration_seconds: Math.round((Date.now() - started) / 1000),
    },
  });
}

if (isMain(import.meta.url)) {
  const jobId = process.argv[2];
  if (!jobId) {
    console.error('usage: node worker.mjs <job-id> [--fail]');
    process.exit(2);
  }
  await runWorker(jobId, { fail: process.argv.includes('--fail') });
}
