/**
 * The application's back end for the seed-2 front end. `POST /app/start` creates
 * a transcription job, mints a browser token and runs the worker; the front end
 * puts the token in the session cookie through the hub's `POST /v1/session`,
 * then opens the stream without a token, as the seed's hook does, and polls
 * `/api/v1/jobs/{id}` (both forwarded to the hub) if the stream fails.
 *
 *   node examples/job-stream/server.mjs     (then open the printed URL; ?fail for a failure)
 */
import { fileURLToPath } from 'node:url';
import { sendJson, serve } from '../lib/dev-server.mjs';
import { createJob, HUB_WS, mintToken } from '../lib/hub.mjs';
import { runWorker, STAGES } from './worker.mjs';

const USER = 'musician';

await serve({
  port: Number(process.env.PORT ?? 3002),
  root: fileURLToPath(new URL('./public', import.meta.url)),
  routes: {
    'POST /app/start': async (_req, res, url) => {
      const job = await createJob({
        owner: USER,
        name: 'Transcribe song.mp3',
        stages: STAGES.map((name) => ({ name, weight: name === 'separation' ? 3 : 1 })),
      });
      const token = await mintToken(USER);
      runWorker(job.id, { fail: url.searchParams.has('fail') }).catch((err) =>
        console.error(`worker: ${err.message}`),
      );
      sendJson(res, 200, { jobId: job.id, token, hubWs: HUB_WS });
    },
  },
});
