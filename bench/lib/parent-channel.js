import { mkdirSync, writeFileSync } from 'node:fs';
import inspector from 'node:inspector';
import { dirname } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';

/*
 * The child side of the IPC protocol of `children.js`: announce the URL, answer
 * stats and profiling requests, stop on request, on a signal or when the parent
 * goes away.
 */

/**
 * CPU profiling of a chosen window (the load, not the start-up), with the
 * inspector of this very process.
 */
const profiler = {
  session: null,
  post(method, params) {
    return new Promise((resolve, reject) =>
      this.session.post(method, params, (err, result) => (err ? reject(err) : resolve(result))),
    );
  },
  async start() {
    this.session ??= new inspector.Session();
    this.session.connect();
    await this.post('Profiler.enable');
    await this.post('Profiler.setSamplingInterval', { interval: 200 }); // microseconds
    await this.post('Profiler.start');
  },
  async stop(path) {
    const { profile } = await this.post('Profiler.stop');
    this.session.disconnect();
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, JSON.stringify(profile));
  },
};

/** `stop` closes the server; then the process exits. */
export function serveParent({ url, stop }) {
  // Event-loop delay since the previous stats request (10 ms resolution), for the soak.
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  let stopping = false;
  async function shutdown() {
    if (stopping) return;
    stopping = true;
    try {
      await stop();
    } finally {
      // Exit even if a handle the server forgot would keep the event loop alive.
      process.exit(0);
    }
  }
  process.on('message', (message) => {
    if (message?.type === 'stats') {
      if (message.gc && typeof globalThis.gc === 'function') {
        globalThis.gc();
        globalThis.gc();
      }
      const lag = { p99Ms: loopDelay.percentile(99) / 1e6, maxMs: loopDelay.max / 1e6 };
      loopDelay.reset();
      process.send({ id: message.id, cpu: process.cpuUsage(), memory: process.memoryUsage(), lag });
    } else if (message?.type === 'profile-start') {
      profiler.start().then(() => process.send({ id: message.id }));
    } else if (message?.type === 'profile-stop') {
      profiler.stop(message.path).then(() => process.send({ id: message.id }));
    } else if (message?.type === 'stop') {
      shutdown();
    }
  });
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  // The parent died: do not linger.
  process.on('disconnect', shutdown);
  process.send({ type: 'ready', url });
}

/** Listen on a free port of 127.0.0.1 and serve the parent; `stop` closes the server. */
export function listenForParent(server, stop) {
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address();
    serveParent({ url: `http://127.0.0.1:${port}`, stop });
  });
}

/**
 * Serve the parent with an HTTP server and the `ws` server of its upgrades:
 * stopping terminates every WebSocket, then closes both.
 */
export function listenWithWebSockets(server, wss) {
  listenForParent(
    server,
    () =>
      new Promise((resolve) => {
        for (const ws of wss.clients) ws.terminate();
        wss.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
}
