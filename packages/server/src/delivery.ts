import { type EventKind, type JobEvent, type JobState, TERMINAL_KINDS } from '@headway/protocol';

const COLLAPSIBLE: ReadonlySet<EventKind> = new Set(['progress', 'children']);
const TERMINAL: ReadonlySet<EventKind> = new Set(TERMINAL_KINDS);

/**
 * One committed event on its way to subscribers. It is encoded once per message
 * shape (the native `event` message, or a dialect's message) and the same bytes
 * are written to every subscriber that wants that shape.
 */
export class Delivery {
  /** Progress-like events that a slow reader may skip in favour of a newer one. */
  readonly collapsible: boolean;
  /** Events that end a job: never dropped, never collapsed. */
  readonly terminal: boolean;
  private readonly encoded = new Map<string, Buffer | null>();

  constructor(
    readonly event: JobEvent,
    /** The job's state right after this event. */
    readonly state: JobState,
  ) {
    this.collapsible = COLLAPSIBLE.has(event.kind);
    this.terminal = TERMINAL.has(event.kind);
  }

  get job(): string {
    return this.event.job;
  }
  get seq(): number {
    return this.event.seq;
  }
  get kind(): EventKind {
    return this.event.kind;
  }

  /** The native protocol's `event` message. */
  get native(): Buffer {
    return this.encode('native', encodeNative) as Buffer;
  }

  /**
   * Encodes this delivery in a named shape, once. `encoder` returns null when the
   * shape has no message for this event (a dialect that ignores log events, say).
   */
  encode(shape: string, encoder: (delivery: Delivery) => string | null): Buffer | null {
    let bytes = this.encoded.get(shape);
    if (bytes === undefined) {
      const text = encoder(this);
      bytes = text === null ? null : Buffer.from(text);
      this.encoded.set(shape, bytes);
    }
    return bytes;
  }
}

function encodeNative(d: Delivery): string {
  const e = d.event;
  return JSON.stringify({
    type: 'event',
    job: e.job,
    seq: e.seq,
    kind: e.kind,
    data: e.data,
    at: e.at,
    state: d.state,
  });
}
