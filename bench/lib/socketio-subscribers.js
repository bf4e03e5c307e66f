import { io } from 'socket.io-client';
import { SeqCounter } from './subscribers.js';

const CONNECT_TIMEOUT_MS = 15_000; // 15 seconds from dialling to the join's answer

/**
 * One watcher of the Socket.IO rooms server: WebSocket transport, joins its
 * job's room, counts `progress` events by their seq like the other watchers.
 * Bytes are the Engine.IO packets as received (text frames).
 */
export class SocketIoSubscriber extends SeqCounter {
  constructor(socket, job) {
    super();
    this.socket = socket;
    this.job = job;
  }

  onProgress({ payload }) {
    if (this.count(payload.seq)) this.sample(Date.parse(payload.timestamp));
  }

  close() {
    this.socket.disconnect();
    return Promise.resolve();
  }
}

export function connectSocketIoSubscriber(httpUrl, { token, job }) {
  const socket = io(httpUrl, {
    transports: ['websocket'],
    auth: { token },
    reconnection: false,
    forceNew: true,
    perMessageDeflate: false,
  });
  const sub = new SocketIoSubscriber(socket, job);
  // Engine.IO hands every packet's text here: `42["progress",{…}]` without its leading `4`.
  socket.io.on('open', () => {
    socket.io.engine.on('data', (data) => {
      sub.bytes += (typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength) + 1;
    });
  });
  socket.on('progress', (m) => sub.onProgress(m));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.disconnect();
      reject(new Error(`no join of ${job} within ${CONNECT_TIMEOUT_MS} ms`));
    }, CONNECT_TIMEOUT_MS);
    socket.on('connect_error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('connect', () => {
      socket.emit('subscribe', { taskId: job }, (answer) => {
        clearTimeout(timer);
        if (answer.error) return reject(new Error(answer.error));
        sub.lastSeq = answer.seq;
        resolve(sub);
      });
    });
  });
}
