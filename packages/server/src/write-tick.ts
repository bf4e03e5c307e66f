/**
 * One write scheduler for every outbox in the process: a single `setImmediate`
 * per tick, however many connections have something to write, and one metric
 * update per tick for the messages they wrote.
 */
import type { Metrics } from './metrics.js';

/** A queue the tick writes: `flush` writes what it can; `dispose` gives up on a broken socket. */
export interface TickWriter {
  flush(): void;
  dispose(): void;
}

/** Where the messages a writer wrote are counted. */
export interface SentLabel {
  metrics?: Metrics;
  /** Label for `messagesSent`. Default `ws`. */
  transport?: string;
}

let dirty = new Set<TickWriter>();
let scheduled = false;
let flushing = false;
/** Messages written per label since the last count, added to the metric once per tick. */
const sent = new Map<SentLabel, number>();

/** Write `writer` on the next tick, together with every other writer due then. */
export function scheduleWrite(writer: TickWriter): void {
  dirty.add(writer);
  if (scheduled) return;
  scheduled = true;
  setImmediate(writeDirty);
}

/** Forget a writer that was disposed. */
export function cancelWrite(writer: TickWriter): void {
  dirty.delete(writer);
}

/** Count `n` messages written under `label`: at the end of the tick, or now outside one. */
export function countWritten(label: SentLabel, n: number): void {
  if (!label.metrics) return;
  sent.set(label, (sent.get(label) ?? 0) + n);
  if (!flushing) countSent();
}

/**
 * Write every writer due, now rather than on the next tick: for a caller that
 * has just queued a whole batch of messages (a commit's deliveries), so that
 * they leave without waiting for the event loop to come round.
 */
export function writeNow(): void {
  if (scheduled && !flushing) writeDirty();
}

function writeDirty(): void {
  scheduled = false;
  const batch = dirty;
  dirty = new Set();
  flushing = true;
  try {
    for (const writer of batch) {
      try {
        writer.flush();
      } catch {
        // A socket that throws on write is broken; its close event cleans up. One
        // bad connection must not keep the others of this tick from being written.
        writer.dispose();
      }
    }
  } finally {
    flushing = false;
    countSent();
  }
}

/** One metric update per tick rather than one per connection: label lookups are not free. */
function countSent(): void {
  for (const [label, n] of sent) label.metrics?.messagesSent.inc({ transport: label.transport ?? 'ws' }, n);
  sent.clear();
}
