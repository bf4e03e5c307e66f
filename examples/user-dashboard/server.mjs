/**
 * The application's back end for the seed-4 dashboard. `GET /app/token` is the
 * front end's `getAuthToken()`: a browser token for the signed-in user.
 * `POST /app/import` creates a list of ten videos (a parent job and its
 * children) and runs the worker. The dashboard shows every list of the user,
 * live, and reads what it missed from the progress history after a reconnect.
 *
 *   node examples/user-dashboard/server.mjs     (then open the printed URL)
 */
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { sendJson, serve } from '../lib/dev-server.mjs';
import { createJob, HUB_WS, mintToken } from '../lib/hub.mjs';
import { runWorker } from './worker.mjs';

const USER = 'alice';
const VIDEOS = 10;

await serve({
  port: Number(process.env.PORT ?? 3004),
  root: fileURLToPath(new URL('./public', import.meta.url)),
  routes: {
    'GET /app/token': async (_req, res) =>
      sendJson(res, 200, { token: await mintToken(USER), hubWs: HUB_WS }),
    'POST /app/import': async (_req, res) => {
      const list = await createJob({ id: randomUUID(), owner: USER, name: `Import of ${VIDEOS} videos` });
      const videos = [];
      for (let i = 1; i <= VIDEOS; i++) {
        videos.push((await createJob({ owner: USER, parent: list.id, name: `Video ${i}` })).id);
      }
      runWorker(list.id, videos, { failEvery: 7 }).catch((err) => console.error(`worker: ${err.message}`));
      sendJson(res, 200, { jobId: list.id });
    },
  },
});
