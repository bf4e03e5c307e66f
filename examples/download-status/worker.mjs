/**
 * A worker like the video downloader's Celery task (seed 3): it reports the
 * seed's milestones — 5 % starting, 10 % video info fetched, 15–89 % download,
 * 90 % upload starting, 92 % uploading, 98 % cleaning up — with the video info
 * as job metadata and the download URL, storage provider and file size as the
 * result.
 *
 *   node examples/download-status/worker.mjs <job-id>
 */
import { isMain, report, sleep } from '../lib/hub.mjs';

const FILE_SIZE = 52_428_800; // 50 MiB

export async function runWorker(jobId) {
  await report(jobId, { kind: 'progress', percent: 5, message: 'Starting to process' });
  await sleep(500);
  await report(
    jobId,
    {
      kind: 'metadata',
      metadata: {
        videoInfo: {
          id: 'dQw4w9WgXcQ',
          title: 'Example video',
          thumbnail: 'https://i.ytimg.com/vi/dQw4w9WgXcQ/hqdefault.jpg',
          duration: 212,
          quality: '1080p',
        },
      },
    },
    { kind: 'progress', percent: 10, message: 'Video info fetched' },
  );
  for (let done = 0; done < FILE_SIZE; ) {
    await sleep(300);
    done = Math.min(FILE_SIZE, done + 4 * 1024 * 1024);
    // 15–89 % while downloading.
    await report(jobId, { kind: 'progress', percent: 15 + Math.floor((done / FILE_SIZE) * 74) });
  }
  await report(jobId, { kind: 'progress', percent: 90, message: 'Download complete, starting upload' });
  await sleep(500);
  await report(jobId, { kind: 'progress', percent: 92, message: 'Uploading to cloud storage' });
  await sleep(800);
  await report(jobId, { kind: 'progress', percent: 98, message: 'Upload complete, cleaning up' });
  await sleep(300);
  await report(jobId, {
    kind: 'completed',
    result: {
      downloadUrl: `https://storage.googleapis.com/example-bucket/${jobId}.mp4`,
      storageProvider: 'gcs',
      fileSize: FILE_SIZE,
    },
  });
}

if (isMain(import.meta.url)) {
  const jobId = process.argv[2];
  if (!jobId) {
    console.error('usage: node worker.mjs <job-id>');
    process.exit(2);
  }
  await runWorker(jobId);
}
