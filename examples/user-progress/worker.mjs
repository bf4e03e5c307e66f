/**
 * A worker like the video-learning app's (seed 0): it downloads, transcribes and
 * translates a video, reporting each stage and its progress. Where the seed's
 * service called `send_progress(user_id, {stage, progress, eta_seconds})`, it
 * reports to the hub, which computes `progress` across the stages and the ETA.
 *
 *   node examples/user-progress/worker.mjs <job-id>
 */
import { isMain, report, sleep } from '../lib/hub.mjs';

export const STAGES = ['downloading', 'transcription', 'translation'];

export async function runWorker(jobId) {
  for (const stage of STAGES) {
    await report(jobId, { kind: 'stage', name: stage });
    for (let percent = 10; percent <= 100; percent += 10) {
      await sleep(300);
      const { control } = await report(jobId, { kind: 'progress', percent });
      if (control.cancelRequested) {
        await report(jobId, { kind: 'cancelled', reason: 'cancelled by the user' });
        return;
      }
    }
  }
  await report(jobId, { kind: 'completed' });
}

if (isMain(import.meta.url)) {
  const jobId = process.argv[2];
  if (!jobId) {
    console.error('usage: node worker.mjs <job-id>');
    process.exit(2);
  }
  await runWorker(jobId);
}
