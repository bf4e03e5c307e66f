/**
 * A real HTTP receiver for webhook tests, on a port of its own: records every
 * request (headers and raw body) and answers what `answer` says, or never
 * (`'hang'`) until closed.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedRequest {
  delivery: string;
  signature: string;
  body: string;
  /** What the receiver answered. */
  answered?: Answer;
  json: {
    id: string;
    type: string;
    at: string;
    job: { id: string; status: string };
    event: { job: string; seq: number; kind: string };
  };
}

export type Answer = number | 'hang';

export interface Receiver {
  url: string;
  port: number;
  requests: ReceivedRequest[];
  /** Requests being answered right now, and the most there ever were at once. */
  open: number;
  maxOpen: number;
  answer: (req: ReceivedRequest, index: number) => Answer;
  /** Stop listening and drop any request left hanging. */
  close(): Promise<void>;
}

/** Start a receiver on `port` (default: a free one). */
export async function startReceiver(answer: Receiver['answer'] = () => 200, port = 0): Promise<Receiver> {
  const hanging = new Set<ServerResponse>();
  const receiver: Receiver = {
    url: '',
    port: 0,
    requests: [],
    open: 0,
    maxOpen: 0,
    answer,
    close: async () => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    receiver.open++;
    receiver.maxOpen = Math.max(receiver.maxOpen, receiver.open);
    res.on('close', () => {
      receiver.open--;
      hanging.delete(res);
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const r: ReceivedRequest = {
        delivery: String(req.headers['headway-delivery']),
        signature: String(req.headers['headway-signature']),
        body,
        json: JSON.parse(body),
      };
      const index = receiver.requests.push(r) - 1;
      const status = receiver.answer(r, index);
      r.answered = status;
      if (status === 'hang') hanging.add(res);
      else res.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  receiver.port = (server.address() as AddressInfo).port;
  receiver.url = `http://127.0.0.1:${receiver.port}/hook`;
  return receiver;
}

/** The seqs of the requests answered 2xx, per job, in the order they arrived. */
export function seqsByJob(requests: readonly ReceivedRequest[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const r of requests) {
    if (typeof r.answered !== 'number' || r.answered < 200 || r.answered > 299) continue;
    const list = out.get(r.json.event.job) ?? [];
    list.push(r.json.event.seq);
    out.set(r.json.event.job, list);
  }
  return out;
}
