/**
 * Playlist imports: a batch parent with ten child jobs, two or three of them
 * running at once. The parent reports no progress of its own: the hub rolls it
 * up from its children, passes a cancel of the parent on to them, and finishes
 * the parent once they have all finished.
 */
import type { JobHandle } from '@headway/worker';
import { formatBytes, MB, newId, PLAYLISTS, pad, pick, random, randomInt, videoId } from './fixtures.js';
import { advance, messageOf, runJob, type Simulation } from './simulation.js';

/** Videos in every playlist. */
export const BATCH_SIZE = 10;

interface Video {
  job: JobHandle;
  file: string;
  size: number;
}

/** Import playlists one after the other, each `2…maxWidth` videos at a time. */
export async function playlistLane(sim: Simulation, maxWidth: number): Promise<void> {
  await sim.simSleep(random(300, 800));
  let refused = 0;
  for (;;) {
    const created = await importPlaylist(sim, randomInt(Math.min(2, maxWidth), maxWidth));
    // A hub that keeps refusing jobs is not hammered: back off in real time.
    refused = created ? 0 : refused + 1;
    if (refused > 0) await sim.sleep(Math.min(30_000, 1_000 * 2 ** refused));
    else await sim.simSleep(random(2_000, 4_000));
  }
}

/** Returns false when the parent could not be created. */
async function importPlaylist(sim: Simulation, width: number): Promise<boolean> {
  const title = pick(PLAYLISTS);
  const slug = title.toLowerCase().replace(/[^a-z0-9]+/g, '-');
  const parentId = newId('batch');
  let parent: JobHandle;
  try {
    parent = await sim.create(
      {
        id: parentId,
        name: `Import playlist "${title}" (${BATCH_SIZE} videos)`,
        metadata: { source: `https://videos.example.com/playlist?list=${videoId()}`, videos: BATCH_SIZE },
      },
      { batch: true },
    );
  } catch (err) {
    if (sim.signal.aborted) throw err;
    sim.logger.warn({ job: parentId, err: messageOf(err) }, 'demo: could not create a batch');
    return false;
  }
  const videos: Video[] = [];
  try {
    // Every child is created before any runs: the hub finishes the parent once all
    // of its children have, so a parent with only its first child would end early.
    for (let i = 1; i <= BATCH_SIZE; i++) {
      const file = `${slug}-${pad(i, 2)}.mp4`;
      const id = newId('import');
      try {
        const job = await sim.create(
          {
            id,
            name: `Import video ${i} of ${BATCH_SIZE}: ${file}`,
            metadata: { source: `https://videos.example.com/watch?v=${videoId()}`, index: i },
          },
          { parent },
        );
        videos.push({ job, file, size: Math.round(random(40, 320) * MB) });
      } catch (err) {
        if (sim.signal.aborted) throw err;
        sim.logger.warn({ job: id, err: messageOf(err) }, 'demo: could not create a batch item');
        break;
      }
    }
    const bytes = videos.reduce((sum, v) => sum + v.size, 0);
    parent.log(`Resolved playlist: ${videos.length} videos, ${formatBytes(bytes)} in all`);
    await runVideos(sim, parent, videos, width);
  } finally {
    for (const video of videos) sim.release(video.job);
    sim.release(parent);
  }
  return true;
}

/**
 * Run the videos `width` at a time. A pause of the parent holds back the next
 * videos (the worker reports `paused`, and `resumed` later); a cancel of the
 * parent, which the worker acknowledges, starts no more of them.
 */
async function runVideos(sim: Simulation, parent: JobHandle, videos: Video[], width: number): Promise<void> {
  let next = 0;
  const running = new Set<Promise<unknown>>();
  try {
    while ((next < videos.length && !parent.ended) || running.size > 0) {
      while (running.size < width && next < videos.length && (await mayLaunch(parent))) {
        const video = videos[next++]!;
        const run: Promise<unknown> = runJob(sim, video.job, () => importVideo(sim, video))
          // Only the demo stopping ends a video with an error, and the lane learns of that on its own.
          .catch(() => {})
          .finally(() => running.delete(run));
        running.add(run);
      }
      // Woken by a finished video or by the next tick, whichever comes first.
      await Promise.race([...running, sim.tick()]);
      if (parent.control.paused) await mayLaunch(parent);
    }
  } finally {
    // Settle the videos still running (when the demo stops) before the lane ends.
    await Promise.allSettled([...running]);
  }
}

/** Waits while the parent is paused; false once it has ended (cancelled, or finished by the hub). */
async function mayLaunch(parent: JobHandle): Promise<boolean> {
  try {
    await parent.checkpoint();
  } catch {
    return false;
  }
  return !parent.ended;
}

async function importVideo(sim: Simulation, video: Video): Promise<'completed'> {
  const { job, file, size } = video;
  await advance(sim, job, size / (random(20, 35) * MB), (f) => {
    job.progress(
      { current: Math.min(size, Math.round(f * size)), total: size, unit: 'bytes' },
      `Fetching ${file}`,
    );
  });
  job.progress({ current: size, total: size, unit: 'bytes' }, `Imported ${file}`);
  await job.complete({ url: `https://cdn.example.com/imports/${file}` });
  return 'completed';
}
