import { fork } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

const READY_TIMEOUT_MS = 20_000; // 20 seconds: a cold start with migrations on a slow disk
const STOP_TIMEOUT_MS = 5_000; // 5 seconds of graceful shutdown before SIGKILL
const REQUEST_TIMEOUT_MS = 30_000; // 30 seconds: a busy child may answer late

/** Every child still running, so that a failure anywhere still stops them all. */
const running = new Set();

process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * Fork a server (a bench child script) with an IPC channel. The child sends
 * `{type: 'ready', url}` once listening, answers `{type: 'stats', id, gc}` with its
 * own `process.cpuUsage()` and `process.memoryUsage()` (after a full GC when asked
 * and started with `--expose-gc`), starts and stops a CPU profile on
 * `profile-start` / `profile-stop {path}`, and shuts down on `{type: 'stop'}`.
 * Its stdout and stderr go to `logFile`.
 */
export async function startChild(script, { env = {}, execArgv = [], logFile }) {
  const log = openSync(logFile, 'w');
  const child = fork(script, [], {
    env: { ...process.env, ...env },
    execArgv,
    stdio: ['ignore', log, log, 'ipc'],
  });
  closeSync(log);
  running.add(child);
  let exited = false;
  const exit = new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      exited = true;
      running.delete(child);
      resolve({ code, signal });
    }),
  );

  const pending = new Map();
  let nextId = 1;
  child.on('message', (message) => {
    const waiter = pending.get(message?.id);
    if (waiter) {
      pending.delete(message.id);
      waiter(message);
    }
  });

  let timer;
  const ready = await Promise.race([
    new Promise((resolve) => child.on('message', (m) => m?.type === 'ready' && resolve(m))),
    exit.then(({ code, signal }) => {
      throw new Error(
        `${script} exited before it was ready (code ${code}, signal ${signal}); see ${logFile}`,
      );
    }),
    new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${script} not ready after ${READY_TIMEOUT_MS} ms`)),
        READY_TIMEOUT_MS,
      );
    }),
  ]).finally(() => clearTimeout(timer));

  function request(type, body = {}) {
    const id = nextId++;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`${script}: no answer to "${type}" after ${REQUEST_TIMEOUT_MS} ms`));
      }, REQUEST_TIMEOUT_MS);
      pending.set(id, (m) => {
        clearTimeout(t);
        resolve(m);
      });
      child.send({ ...body, type, id });
    });
  }

  return {
    pid: child.pid,
    url: ready.url,
    /** CPU seconds (user + system) and memory of the child, as it measures itself. */
    async stats({ gc = false } = {}) {
      const m = await request('stats', { gc });
      return {
        cpuSeconds: (m.cpu.user + m.cpu.system) / 1e6,
        systemSeconds: m.cpu.system / 1e6,
        memory: m.memory,
        /** Event-loop delay since the previous `stats` call: p99 and max, ms. */
        lag: m.lag,
      };
    },
    /** Start sampling the child's CPU (V8 profiler, 200 µs interval). */
    async startProfile() {
      await request('profile-start');
    },
    /** Stop sampling and write the `.cpuprofile` to `path`. */
    async stopProfile(path) {
      await request('profile-stop', { path });
    },
    async stop() {
      if (exited) return;
      if (child.connected) child.send({ type: 'stop' });
      else child.kill('SIGTERM');
      let t;
      const stopped = await Promise.race([
        exit.then(() => true),
        new Promise((resolve) => {
          t = setTimeout(() => resolve(false), STOP_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(t);
      if (!stopped) {
        child.kill('SIGKILL');
        await exit;
      }
    },
  };
}

/** Stop every child still running (each one by its own handle). */
export async function stopAllChildren() {
  for (const child of [...running]) child.kill('SIGKILL');
}
