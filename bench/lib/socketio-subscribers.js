import { io } from 'socket.io-client';

const CONNECT_TIMEOUT_MS = 15_000; // 15 seconds from dialling to the join's answer
const LATENCY_SAMPLE_EVERY = 8;

/**
 * One watcher of the Socket.IO rooms server: WebSocket transport, joins its
 * job's room, counts `progress` events by their seq like the other watchers.
 * Bytes are the Engine.IO packets as received (text frames).
 */
export class SocketIoSubscriber {
  received = 0;
  skipped = 0;
  duplicates = 0;
  bytes = 0;
  lastSeq = 0;
  lastAt = 0;
  closeCode = null;
  latencies = [];

  constructor(socket, job) {
    this.socket = socket;
    this.job = job;
  }

  resetCounters() {
    this.received = 0;
    this.skipped = 0;
    this.duplicates = 0;
    this.bytes = 0;
    this.lastAt = 0;
    this.latencies = [];
  }

  onProgress({ payload }) {
    this.lastAt = performance.now();
    const seq = payload.seq;
    if (seq <= this.lastSeq) {
      this.duplicates++;
      return;
    }
    this.skipped += seq - this.lastSeq - 1;
    this.received++;
    this.lastSeq = seq;
    if (this.received % LATENCY_SAMPLE_EVERY === 0)
      this.latencies.push(Date.now() - Date.parse(payload.timestamp));
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
