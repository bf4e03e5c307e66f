/**
 * A small history router: `/` (jobs), `/jobs/:id` (one job), `/system`. The
 * hub answers these paths with the dashboard's page, so reloads and shared
 * links land on the same view.
 */
import { type AnchorHTMLAttributes, type MouseEvent, useSyncExternalStore } from 'react';

export type Route =
  | { name: 'jobs' }
  | { name: 'job'; id: string }
  | { name: 'system' }
  | { name: 'not-found'; path: string };

const NAVIGATE = 'headway:navigate';

export function parseRoute(pathname: string): Route {
  if (pathname === '/' || pathname === '' || pathname === '/jobs' || pathname === '/jobs/') {
    return { name: 'jobs' };
  }
  if (pathname === '/system' || pathname === '/system/') return { name: 'system' };
  const job = /^\/jobs\/([^/]+)\/?$/.exec(pathname);
  if (job) {
    try {
      return { name: 'job', id: decodeURIComponent(job[1]!) };
    } catch {
      // A malformed escape: not a route.
    }
  }
  return { name: 'not-found', path: pathname };
}

export function jobPath(id: string): string {
  return `/jobs/${encodeURIComponent(id)}`;
}

/** Go to a path of the dashboard without reloading. */
export function navigate(to: string, options: { replace?: boolean } = {}): void {
  if (options.replace) window.history.replaceState(null, '', to);
  else window.history.pushState(null, '', to);
  window.dispatchEvent(new Event(NAVIGATE));
}

function subscribe(notify: () => void): () => void {
  window.addEventListener('popstate', notify);
  window.addEventListener(NAVIGATE, notify);
  return () => {
    window.removeEventListener('popstate', notify);
    window.removeEventListener(NAVIGATE, notify);
  };
}

/** The current path and query, re-rendering on navigation. */
export function useLocation(): { pathname: string; search: string } {
  const href = useSyncExternalStore(subscribe, () => window.location.pathname + window.location.search);
  const q = href.indexOf('?');
  return q < 0 ? { pathname: href, search: '' } : { pathname: href.slice(0, q), search: href.slice(q) };
}

/** A link that navigates in the page on a plain click, and behaves as a link otherwise (new tab …). */
export function Link({ to, onClick, ...rest }: { to: string } & AnchorHTMLAttributes<HTMLAnchorElement>) {
  const follow = (e: MouseEvent<HTMLAnchorElement>) => {
    onClick?.(e);
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(to);
  };
  return <a href={to} onClick={follow} {...rest} />;
}
