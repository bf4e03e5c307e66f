/**
 * The seeds' design, as the design documents write it (a `ConnectionManager`
 * holding a map of task id → sockets, `ws://…/ws/progress/{taskId}`, and
 * `send_json` of `{type, taskId, payload}` to every socket of the task): a `ws`
 * server that `JSON.stringify`s the small message once per subscriber. No store,
 * no authentication (the `token` parameter is read and ignored), no backpressure.
 *
 * With `HEADWAY_BENCH_FLOOR=1` it is the floor of any WebSocket fan-out instead:
 * the same message serialized and framed once per event, and the same bytes
 * written straight to each subscriber's TCP socket (one `write` each, no `ws`
 * sender in between). What a server does beyond that is its own cost.
 */
import { Sender, WebSocketServer } from 'ws';
import { batchServer, newTask, progress } from './lib/http-batches.js';
import { listenWithWebSockets } from './lib/parent-channel.js';

const FLOOR = process.env.HEADWAY_BENCH_FLOOR === '1';

/** taskId → { task, sockets } */
const tasks = new Map();

const server = batchServer({
  createJob({ id }) {
    tasks.set(id, { task: newTask(id), sockets: new Set() });
    return { id };
  },
  publish(input, at) {
    const entry = tasks.get(input.job);
    if (!entry) return { job: input.job, error: { code: 'HW_ERR_NOT_FOUND', message: 'no such task' } };
    const payload = progress(entry.task, input, at);
    const message = { type: 'progress_update', taskId: input.job, payload };
    if (FLOOR) {
      const frame = Buffer.concat(
        Sender.frame(Buffer.from(JSON.stringify(message)), {
          fin: true,
          opcode: 1,
          mask: false,
          readOnly: true,
        }),
      );
      for (const ws of entry.sockets) ws._socket.write(frame);
    } else {
      for (const ws of entry.sockets) ws.send(JSON.stringify(message));
    }
    return { job: input.job, seq: payload.seq };
  },
});

const PATH = '/ws/progress/';
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://localhost');
  const entry = url.pathname.startsWith(PATH) ? tasks.get(url.pathname.slice(PATH.length)) : undefined;
  if (!entry) {
    socket.destroy();
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    entry.sockets.add(ws);
    ws.on('message', (raw) => {
      const data = JSON.parse(raw.toString());
      if (data.type === 'subscribe') {
        const t = entry.task;
        ws.send(
          JSON.stringify({
            type: 'progress_update',
            taskId: t.taskId,
            payload: { seq: t.seq, percentage: t.percentage, stage: t.stage, timestamp: t.timestamp },
          }),
        );
      } else if (data.type === 'ping') {
        ws.send(JSON.stringify({ type: 'pong', timestamp: data.timestamp }));
      }
    });
    ws.on('close', () => entry.sockets.delete(ws));
  });
});

listenWithWebSockets(server, wss);
