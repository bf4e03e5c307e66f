/**
 * A minimal `EventSource` for Node 20 (which has none), enough for the client's
 * SSE transport: named and unnamed events, `id`, `onerror`, `close()`. Like the
 * standard, a non-200 answer or a wrong content type fails the stream for good;
 * unlike it, it does not reconnect on its own (the client never lets it).
 */
import type { EventSourceLike } from '../src/types.js';

/** Every instance not yet closed, so that tests can count and inspect them. */
export const openSources = new Set<NodeEventSource>();

export class NodeEventSource implements EventSourceLike {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSED = 2;
  readyState = 0;
  lastEventId = '';
  onmessage: ((ev: { data: string }) => unknown) | null = null;
  onerror: ((ev: never) => unknown) | null = null;
  onopen: (() => unknown) | null = null;
  private readonly listeners = new Map<string, Set<(ev: { data: string }) => void>>();
  private readonly controller = new AbortController();

  constructor(readonly url: string) {
    openSources.add(this);
    void this.run();
  }

  addEventListener(type: string, listener: (ev: { data: string }) => void): void {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    set.add(listener);
  }

  close(): void {
    this.readyState = 2;
    openSources.delete(this);
    this.controller.abort();
  }

  private fail(): void {
    if (this.readyState === 2) return;
    this.close();
    this.onerror?.(undefined as never);
  }

  private async run(): Promise<void> {
    let res: Response;
    try {
      res = await fetch(this.url, {
        headers: { accept: 'text/event-stream' },
        signal: this.controller.signal,
      });
    } catch {
      this.fail();
      return;
    }
    if (
      res.status !== 200 ||
      !res.headers.get('content-type')?.startsWith('text/event-stream') ||
      !res.body
    ) {
      await res.body?.cancel().catch(() => {});
      this.fail();
      return;
    }
    this.readyState = 1;
    this.onopen?.();
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          this.dispatch(block);
          if (this.readyState === 2) return;
        }
      }
    } catch {
      // Aborted, or the connection broke.
    }
    // The stream ended: the standard would reconnect; the client treats it as an error.
    this.fail();
  }

  private dispatch(block: string): void {
    let type = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'data') data.push(value);
      else if (field === 'event') type = value;
      else if (field === 'id') this.lastEventId = value;
    }
    if (data.length === 0) return;
    const ev = { data: data.join('\n') };
    if (type === 'message') this.onmessage?.(ev);
    for (const listener of this.listeners.get(type) ?? []) listener(ev);
  }
}
