/**
 * A worker like the speech-to-text service's (seed 1): it uploads and decodes
 * an audio file, counting bytes, then transcribes it. Bytes fill the seed's
 * `bytesProcessed`, `bytesTotal` and `processingSpeed`; the result URL and
 * duration fill its `complete` message.
 *
 *   node examples/task-subscribe/worker.mjs <task-id>
 */
import { isMain, report, sleep } from '../lib/hub.mjs';

export const STAGES = ['upload', 'transcription'];
const SIZE = 48 * 1024 * 1024; // a 48 MiB recording

export async function runWorker(taskId) {
  const started = Date.now();
  await report(taskId, { kind: 'stage', name: 'upload' });
  for (let done = 0; done < SIZE; ) {
    await sleep(250);
    done = Math.min(SIZE, done + 3 * 1024 * 1024);
    await report(taskId, { kind: 'progress', current: done, total: SIZE, unit: 'bytes' });
  }
  await report(taskId, { kind: 'stage', name: 'transcription' });
  for (let percent = 5; percent <= 100; percent += 5) {
    await sleep(250);
    const { control } = await report(taskId, {
      kind: 'progress',
      percent,
      message: `segment ${percent / 5} of 20`,
    });
    if (control.cancelRequested) {
      await report(taskId, { kind: 'cancelled' });
      return;
    }
  }
  await report(taskId, {
    kind: 'completed',
    result: {
      resultUrl: `https://stt.example.com/transcripts/${taskId}.txt`,
      duration: Math.round((Date.now() - started) / 1000),
    },
  });
}

if (isMain(import.meta.url)) {
  const taskId = process.argv[2];
  if (!taskId) {
    console.error('usage: node worker.mjs <task-id>');
    process.exit(2);
  }
  await runWorker(taskId);
}
