/**
 * The application's back end for the seed-0 front end. `POST /app/start` creates
 * a job for the signed-in user, puts a browser token for that user in the
 * `headway_token` cookie itself (HttpOnly, as the hub's `POST /v1/session`
 * would), and runs the worker. The front end then opens `/ws/{user_id}` bare,
 * as the seed's client does: the browser sends the cookie to the hub.
 *
 *   node examples/user-progress/server.mjs     (then open the printed URL)
 */
import { fileURLToPath } from 'node:url';
import { sendJson, serve } from '../lib/dev-server.mjs';
import { createJob, HUB_WS, mintToken } from '../lib/hub.mjs';
import { runWorker, STAGES } from './worker.mjs';

/** The signed-in user of this example. */
const USER = '42';
const TOKEN_TTL = 3600; // 1 hour

await serve({
  port: Number(process.env.PORT ?? 3000),
  root: fileURLToPath(new URL('./public', import.meta.url)),
  routes: {
    'GET /app/config': (_req, res) => sendJson(res, 200, { hubWs: HUB_WS, userId: USER }),
    'POST /app/start': async (_req, res) => {
      const job = await createJob({
        owner: USER,
        name: 'Process lecture-042.mp4',
        stages: STAGES.map((name) => ({ name, weight: name === 'transcription' ? 3 : 1 })),
      });
      const token = await mintToken(USER, TOKEN_TTL);
      runWorker(job.id).catch((err) => console.error(`worker: ${err.message}`));
      sendJson(
        res,
        200,
        { jobId: job.id },
        { 'set-cookie': `headway_token=${token}; HttpOnly; SameSite=Lax; Path=/; Max-Age=${TOKEN_TTL}` },
      );
    },
  },
});
