/**
 * The application's back end for the seed-3 front end, which has no login at
 * all. `POST /app/start` creates a public job — anyone holding its id may watch
 * it — with an id the hub generates (a random UUID, so that nobody can guess
 * another download's), runs the worker and answers `{jobId}`.
 *
 *   node examples/download-status/server.mjs     (then open the printed URL)
 */
import { fileURLToPath } from 'node:url';
import { sendJson, serve } from '../lib/dev-server.mjs';
import { createJob, HUB_WS } from '../lib/hub.mjs';
import { runWorker } from './worker.mjs';

await serve({
  port: Number(process.env.PORT ?? 3003),
  root: fileURLToPath(new URL('./public', import.meta.url)),
  routes: {
    'POST /app/start': async (_req, res) => {
      const job = await createJob({ owner: 'downloads', name: 'Download a video', public: true });
      runWorker(job.id).catch((err) => console.error(`worker: ${err.message}`));
      sendJson(res, 200, { jobId: job.id, hubWs: HUB_WS });
    },
  },
});
