/**
 * `quietEnd`: once a closing handshake has begun, the extra `end()` calls that
 * `ws` makes on the TCP socket and its frame parser do nothing, instead of
 * building an error each; every other `end()` behaves as Node's. On a real TCP
 * socket pair.
 */
import { once } from 'node:events';
import { createServer, type Server, Socket } from 'node:net';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { quietEnd } from '../src/transports/socket-server.js';

let server: Server | null = null;
const sockets: Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  if (server) await new Promise<void>((resolve) => server!.close(() => resolve()));
  server = null;
});

/** A connected pair: `ours` (quieted) and the peer's end. */
async function pair(): Promise<{ ours: Socket; peer: Socket }> {
  server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address() as { port: number };
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const ours = new Socket();
  ours.connect(address.port, '127.0.0.1');
  await once(ours, 'connect');
  const [peer] = await accepted;
  sockets.push(ours, peer);
  quietEnd(ours);
  return { ours, peer };
}

describe('quietEnd', () => {
  it('still ends a socket that has not ended: the peer gets the FIN', async () => {
    const { ours, peer } = await pair();
    peer.resume();
    const ended = once(peer, 'end');
    const finished = once(ours, 'finish');
    expect(ours.end()).toBe(ours);
    await Promise.all([ended, finished]);
    expect(ours.writableFinished).toBe(true);
  });

  it('makes end() on a finished or destroyed stream a no-op without an error', async () => {
    const { ours, peer } = await pair();
    peer.resume();
    const finished = once(ours, 'finish');
    ours.end();
    await finished;
    const errors: unknown[] = [];
    ours.on('error', (err) => errors.push(err));
    expect(ours.end()).toBe(ours);
    ours.destroy();
    expect(ours.end()).toBe(ours);
    await once(ours, 'close');
    expect(errors).toEqual([]);
  });

  it('leaves end() with a callback as Node has it: the callback learns the stream had finished', async () => {
    const stream = new Writable({ write: (_chunk, _encoding, callback) => callback() });
    quietEnd(stream);
    stream.end();
    await once(stream, 'finish');
    const err = await new Promise<Error | null | undefined>((resolve) => stream.end(resolve));
    expect(err).toMatchObject({ code: 'ERR_STREAM_ALREADY_FINISHED' });
  });

  it('is set once per stream', () => {
    const stream = new Writable({ write: (_chunk, _encoding, callback) => callback() });
    quietEnd(stream);
    const end = stream.end;
    quietEnd(stream);
    expect(stream.end).toBe(end);
    expect(end).not.toBe(Writable.prototype.end);
  });
});
