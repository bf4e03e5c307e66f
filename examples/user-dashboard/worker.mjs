/**
 * A worker like the video-list importer's `process_video_list` (seed 4): a list
 * is a parent job with one child job per video. For each video it sets the
 * list's `video_id`, reports the video's progress, and completes it — or fails
 * it and goes on with the next, as the seed's worker does. The list finishes by
 * itself when its last video does.
 *
 *   node examples/user-dashboard/worker.mjs <list-id> <video-id>…
 */
import { isMain, report, sleep } from '../lib/hub.mjs';

export async function runWorker(listId, videoIds, { failEvery = 0 } = {}) {
  for (const [i, videoId] of videoIds.entries()) {
    const { control } = await report(listId, { kind: 'metadata', metadata: { video_id: videoId } });
    if (control.cancelRequested) return; // the hub cancels the unfinished videos with the list
    for (const percent of [30, 60, 100]) {
      await sleep(250);
      await report(videoId, {
        kind: 'progress',
        percent,
        message: `Processing video ${i + 1}/${videoIds.length}`,
      });
    }
    if (failEvery > 0 && (i + 1) % failEvery === 0) {
      await report(videoId, { kind: 'failed', error: { message: 'transcript unavailable' } });
    } else {
      await report(videoId, { kind: 'completed' });
    }
  }
}

if (isMain(import.meta.url)) {
  const [listId, ...videoIds] = process.argv.slice(2);
  if (!listId || videoIds.length === 0) {
    console.error('usage: node worker.mjs <list-id> <video-id>…');
    process.exit(2);
  }
  await runWorker(listId, videoIds);
}
