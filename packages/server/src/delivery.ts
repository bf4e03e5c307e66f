import { type EventKind, type JobEvent, type JobState, TERMINAL_KINDS } from '@headway/protocol';
import { stateJson } from './state/state-json.js';
import { type StatePatch, statePatch, statePatchJson } from './state-patch.js';

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
  /** The WebSocket frame of the first encoding framed, and of any other (`framed`). */
  private framedPayload: Buffer | undefined;
  private firstFrame: Buffer | undefined;
  private otherFrames: Map<Buffer, Buffer> | undefined;
  private changed: StatePatch | undefined;
  /** For a `rebased` copy: the delivery it copies. */
  origin: Delivery | undefined;

  constructor(
    readonly event: JobEvent,
    /** The job's state right after this event. */
    readonly state: JobState,
    /**
     * The job's state right before it (seq − 1): null for a job's first event,
     * undefined when not known (the patch then holds every field).
     */
    public prev?: JobState | null,
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

  /** The fields of `state` this event changed (see `state-patch.ts`), computed once. */
  get patch(): StatePatch {
    this.changed ??= statePatch(this.prev, this.state);
    return this.changed;
  }

  /** The native `event` message in delta mode: `patch` instead of `state`. */
  get delta(): Buffer {
    return this.encode('delta', encodeDelta) as Buffer;
  }

  /**
   * The same event with a patch of its own, for one subscriber whose last state
   * of the job is not the one right before it: the merge of the patches of the
   * deliveries it skipped and this one's, or every field. Encoded apart from the shared bytes.
   */
  rebased(patch: StatePatch): Delivery {
    const copy = new Delivery(this.event, this.state);
    copy.changed = patch;
    copy.origin = this.origin ?? this;
    return copy;
  }

  /**
   * One of this delivery's encodings (`payload`, from `encode`) as a WebSocket
   * text frame, made by `frame` once and shared by every connection that writes it.
   */
  framed(payload: Buffer, frame: (payload: Buffer) => Buffer): Buffer {
    if (this.framedPayload === payload) return this.firstFrame!;
    if (this.framedPayload === undefined) {
      this.framedPayload = payload;
      this.firstFrame = frame(payload);
      return this.firstFrame;
    }
    const others = (this.otherFrames ??= new Map());
    let bytes = others.get(payload);
    if (bytes === undefined) others.set(payload, (bytes = frame(payload)));
    return bytes;
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

/** The `event` message without its closing brace, for the state or the patch to follow. */
function eventHead(d: Delivery): string {
  const e = d.event;
  const head = JSON.stringify({
    type: 'event',
    job: e.job,
    seq: e.seq,
    kind: e.kind,
    data: e.data,
    at: e.at,
  });
  return head.slice(0, -1);
}

function encodeNative(d: Delivery): string {
  // The state's JSON is usually made already, for the job row of the commit.
  return `${eventHead(d)},"state":${stateJson(d.state)}}`;
}

function encodeDelta(d: Delivery): string {
  // The patch from the state before is usually made already, for the store's log.
  const patch = d.origin === undefined && d.prev ? statePatchJson(d.prev, d.state) : JSON.stringify(d.patch);
  return `${eventHead(d)},"patch":${patch}}`;
}
