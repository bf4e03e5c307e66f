/**
 * Where the live connection stands: connected (and over which transport),
 * reconnecting (with the transport it is getting back), or offline. The state
 * is written out and has its own symbol; a polite live region announces changes.
 */
import type { TransportKind } from '@headway/client';
import { useConnection } from '@headway/react';
import { useEffect, useRef, useSyncExternalStore } from 'react';

export const TRANSPORT_NAMES: Record<TransportKind, string> = {
  ws: 'WebSocket',
  sse: 'Server-Sent Events',
  poll: 'long-polling',
};

function subscribeOnline(notify: () => void): () => void {
  window.addEventListener('online', notify);
  window.addEventListener('offline', notify);
  return () => {
    window.removeEventListener('online', notify);
    window.removeEventListener('offline', notify);
  };
}

/** `navigator.onLine`, live. */
export function useOnline(): boolean {
  return useSyncExternalStore(subscribeOnline, () => navigator.onLine);
}

export type LinkState = 'connected' | 'connecting' | 'reconnecting' | 'offline' | 'closed';

export function ConnectionIndicator() {
  const { state, transport } = useConnection();
  const online = useOnline();
  // While reconnecting there is no transport: name the one being restored.
  const last = useRef<TransportKind | null>(null);
  useEffect(() => {
    if (transport) last.current = transport;
  }, [transport]);
  const via = transport ?? last.current;

  let shown: LinkState;
  let text: string;
  if (!online && state !== 'closed') {
    shown = 'offline';
    text = 'Offline: waiting for the network';
  } else if (state === 'connected') {
    shown = 'connected';
    text = `Live over ${via ? TRANSPORT_NAMES[via] : 'the network'}`;
  } else if (state === 'reconnecting') {
    shown = 'reconnecting';
    text = `Reconnecting${via ? ` (${TRANSPORT_NAMES[via]})` : ''}…`;
  } else if (state === 'closed') {
    shown = 'closed';
    text = 'Disconnected';
  } else {
    shown = 'connecting';
    text = 'Connecting…';
  }
  return (
    <output className="connection" data-state={shown} data-transport={via ?? ''} aria-live="polite">
      <span className="connection__symbol" aria-hidden="true">
        {{ connected: '●', connecting: '◌', reconnecting: '◌', offline: '⨯', closed: '■' }[shown]}
      </span>
      <span className="connection__text">{text}</span>
    </output>
  );
}
