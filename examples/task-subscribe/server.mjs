/**
 * The application's back end for the seed-1 front end. `POST /app/start` creates
 * a transcription task, mints a browser token for the user, runs the worker and
 * answers `{taskId, token}`; the front end subscribes with that token, and its
 * polling fallback reads `/api/progress/{taskId}` (forwarded to the hub).
 *
 *   node examples/task-subscribe/server.mjs     (then open the printed URL)
 */
import { fileURLToPath } from 'node:url';
import { sendJson, serve } from '../lib/dev-server.mjs';
import { createJob, HUB_WS, mintToken } from '../lib/hub.mjs';
import { runWorker, STAGES } from './worker.mjs';

const USER = 'listener';

await serve({
  port: Number(process.env.PORT ?? 3001),
  root: fileURLToPath(new URL('./public', import.meta.url)),
  routes: {
    'POST /app/start': async (_req, res) => {
      const task = await createJob({
        owner: USER,
        name: 'Transcribe interview.wav',
        stages: STAGES.map((name) => ({ name, weight: name === 'upload' ? 1 : 4 })),
      });
      const token = await mintToken(USER);
      runWorker(task.id).catch((err) => console.error(`worker: ${err.message}`));
      sendJson(res, 200, { taskId: task.id, token, hubWs: HUB_WS });
    },
  },
});
