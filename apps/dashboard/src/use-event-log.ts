/**
 * A job's event log for the job view: the latest page from the history
 * endpoint, live events on top as they arrive, and older pages on request.
 *
 * The client delivers a job's events gapless and once (it fills gaps from the
 * history itself); when it cannot (the hub could not replay what was missed
 * and the client `reset` the job to its newest state), the missing range is
 * read here from the history, so the log never has a hole. Updates are
 * applied once per animation frame; at most `MAX_EVENTS` are kept (the
 * oldest go first, and can be read again).
 */
import type { HeadwayClientError, JobEvent } from '@headway/client';
import { useClient } from '@headway/react';
import { useCallback, useEffect, useRef, useState } from 'react';

/** Events per page read from the history endpoint. */
export const PAGE_SIZE = 100;
/** Most events kept in memory per open job. */
export const MAX_EVENTS = 2000;
/** Largest page the history endpoint serves. */
const MAX_PAGE = 1000;

export interface EventLog {
  /** Newest first. */
  events: JobEvent[];
  /** Events before the oldest loaded exist. */
  hasOlder: boolean;
  loading: boolean;
  /** Code of the last failed history read. */
  error: string | null;
  loadOlder(): void;
}

const EMPTY: Omit<EventLog, 'loadOlder'> = { events: [], hasOlder: false, loading: true, error: null };

export function useEventLog(id: string): EventLog {
  const client = useClient();
  const [view, setView] = useState(EMPTY);
  const older = useRef<() => void>(() => {});

  useEffect(() => {
    const log = new Map<number, JobEvent>();
    let closed = false;
    let frame = 0;
    let started = false;
    let pending = 0;
    let error: string | null = null;

    const publish = () => {
      frame = 0;
      if (closed) return;
      const events = [...log.values()].sort((a, b) => b.seq - a.seq);
      if (events.length > MAX_EVENTS) {
        for (const e of events.splice(MAX_EVENTS)) log.delete(e.seq);
      }
      const oldest = events.at(-1)?.seq ?? 1;
      setView({ events, hasOlder: started && oldest > 1, loading: pending > 0 || !started, error });
    };
    const schedule = () => {
      if (!frame && !closed) frame = requestAnimationFrame(publish);
    };

    /** Read events `from` < seq <= `to` from the history, page by page. */
    const read = async (from: number, to: number) => {
      pending++;
      schedule();
      try {
        let since = Math.max(0, from);
        while (!closed && since < to) {
          const page = await client.history(id, { since, limit: Math.min(MAX_PAGE, to - since) });
          for (const e of page.events) if (e.seq <= to) log.set(e.seq, e);
          if (page.events.length === 0) break;
          since = page.events.at(-1)!.seq;
        }
        error = null;
      } catch (err) {
        error = (err as HeadwayClientError).code ?? 'HW_ERR_CLIENT_NETWORK';
      } finally {
        pending--;
        schedule();
      }
    };

    /** The first state seen: the page of history that leads to it. */
    const start = (seq: number) => {
      if (started) return;
      started = true;
      void read(seq - PAGE_SIZE, seq);
    };

    const handle = client.job(id);
    const offs = [
      handle.on('event', ({ event }) => {
        log.set(event.seq, event);
        start(event.seq);
        schedule();
      }),
      handle.on('change', ({ state }) => start(state.seq)),
      handle.on('reset', ({ state }) => {
        let newest = 0;
        for (const seq of log.keys()) newest = Math.max(newest, seq);
        if (state.seq - newest > MAX_EVENTS) {
          // Too far behind to fill: start again from the newest page.
          log.clear();
          void read(state.seq - PAGE_SIZE, state.seq);
        } else {
          void read(newest, state.seq);
        }
      }),
      handle.on('error', () => {
        started = true;
        schedule();
      }),
    ];
    if (handle.state) start(handle.state.seq);

    older.current = () => {
      let oldest = Infinity;
      for (const seq of log.keys()) oldest = Math.min(oldest, seq);
      if (oldest === Infinity || oldest <= 1) return;
      void read(oldest - 1 - PAGE_SIZE, oldest - 1);
    };

    return () => {
      closed = true;
      cancelAnimationFrame(frame);
      for (const off of offs) off();
      handle.close();
      older.current = () => {};
      setView(EMPTY);
    };
  }, [client, id]);

  const loadOlder = useCallback(() => older.current(), []);
  return { ...view, loadOlder };
}
