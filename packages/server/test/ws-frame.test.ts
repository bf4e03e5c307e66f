/**
 * The frames the outbox writes to a socket itself (`textFrame`), read back by
 * `ws`'s own client-side parser: every header size, and a text that is not ASCII.
 */
import type { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import * as ws from 'ws';
import { textFrame } from '../src/outbox-parts.js';

/** `ws`'s frame parser, which its type declarations leave out. */
const { Receiver } = ws as unknown as {
  Receiver: new (options: { isServer: boolean; maxPayload: number }) => Writable;
};

/** The messages a `ws` client reads from `bytes`, or the error it stops at. */
function read(bytes: Buffer): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const messages: string[] = [];
    const receiver = new Receiver({ isServer: false, maxPayload: 0 });
    receiver.on('message', (data: Buffer, isBinary: boolean) => {
      expect(isBinary).toBe(false);
      messages.push(data.toString());
    });
    receiver.on('error', reject);
    receiver.write(bytes, (err?: Error | null) => (err ? reject(err) : resolve(messages)));
  });
}

describe('textFrame', () => {
  it('is read back whole by a WebSocket client, at every length form of the header', async () => {
    // 7-bit lengths up to 125, 16-bit up to 65,535, 64-bit beyond.
    for (const length of [0, 1, 125, 126, 127, 65_535, 65_536, 200_000]) {
      const text = 'x'.repeat(length);
      const frame = textFrame(Buffer.from(text));
      expect(frame.length).toBe(length + (length < 126 ? 2 : length < 65_536 ? 4 : 10));
      expect(await read(frame)).toEqual([text]);
    }
  });

  it('keeps multi-byte UTF-8 intact and frames several messages back to back', async () => {
    const texts = ['{"message":"transcodé ✓ 日本"}', '', '{"seq":2}'];
    const bytes = Buffer.concat(texts.map((t) => textFrame(Buffer.from(t))));
    expect(await read(bytes)).toEqual(texts);
  });
});
