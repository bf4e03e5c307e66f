/**
 * Socket.IO rooms, the usual way to build the same channel with Socket.IO: each
 * watcher joins the room of its job, and each progress event is one
 * `io.to(job).emit('progress', {taskId, payload})`, which Socket.IO encodes once
 * per room. WebSocket transport only, no store, no authentication.
 */
import { Server } from 'socket.io';
import { batchServer, newTask, progress } from './lib/http-batches.js';
import { listenForParent } from './lib/parent-channel.js';

const tasks = new Map();

const server = batchServer({
  createJob({ id }) {
    tasks.set(id, newTask(id));
    return { id };
  },
  publish(input, at) {
    const task = tasks.get(input.job);
    if (!task) return { job: input.job, error: { code: 'HW_ERR_NOT_FOUND', message: 'no such task' } };
    const payload = progress(task, input, at);
    io.to(input.job).emit('progress', { taskId: input.job, payload });
    return { job: input.job, seq: payload.seq };
  },
});

const io = new Server(server, { transports: ['websocket'], perMessageDeflate: false, serveClient: false });
io.on('connection', (socket) => {
  socket.on('subscribe', ({ taskId }, ack) => {
    const task = tasks.get(taskId);
    if (!task) return ack({ error: 'no such task' });
    socket.join(taskId);
    ack({ seq: task.seq });
  });
});

listenForParent(
  server,
  () =>
    new Promise((resolve) => {
      io.disconnectSockets(true);
      io.close(() => resolve());
    }),
);
