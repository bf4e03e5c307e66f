/**
 * The clients of a reconnect storm, in a process of their own (forked by
 * bench/storm.js), so that their handshakes do not delay the live watchers'
 * reading in the load generator. Over IPC:
 * - `{type: 'connect', id, wsUrl, secret, prefix, count, jobs, concurrency}`:
 *   `count` clients, each with its own token (`<prefix>-<n>`) and one subscription
 *   to a job of `jobs`; answers `{id, connections, ms}` once all are subscribed;
 * - `{type: 'close', id}`: closes them; answers `{id}`;
 * - `{type: 'exit'}`.
 */
import { closeSubscribers, connectSubscribers } from './subscribers.js';
import { signViewerToken } from './tokens.js';

let subs = [];
process.on('message', async (m) => {
  if (m.type === 'connect') {
    const specs = Array.from({ length: m.count }, (_, v) => {
      const job = m.jobs[v % m.jobs.length];
      return { job, token: signViewerToken(m.secret, { user: `${m.prefix}-${v}`, jobs: [job] }) };
    });
    const t0 = performance.now();
    try {
      subs = await connectSubscribers(m.wsUrl, specs, { concurrency: m.concurrency });
      process.send({ id: m.id, connections: subs.length, ms: performance.now() - t0 });
    } catch (err) {
      process.send({ id: m.id, error: String(err) });
    }
  } else if (m.type === 'close') {
    await closeSubscribers(subs);
    subs = [];
    process.send({ id: m.id });
  } else if (m.type === 'exit') {
    process.exit(0);
  }
});
