/**
 * A page for the shared-tabs test: one client per tab, sharing its connection,
 * recording every event of one job.
 */
import { createClient, type HeadwayClient, type JobCollection } from '../../src/index.js';

declare global {
  interface Window {
    hw: { client: HeadwayClient; seqs: number[]; states: string[]; jobs: JobCollection };
  }
}

const q = new URLSearchParams(location.search);
const client = createClient({
  url: q.get('hub')!,
  token: q.get('token')!,
  shared: true,
  minReconnectDelayMs: 50,
  maxReconnectDelayMs: 500,
});
window.hw = { client, seqs: [], states: [], jobs: client.jobs() };
client.on('state', ({ newState }) => window.hw.states.push(newState));
client.job(q.get('job')!).on('event', ({ event }) => window.hw.seqs.push(event.seq));
