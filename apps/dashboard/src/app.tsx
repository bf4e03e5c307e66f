/**
 * The dashboard's frame: top bar (navigation, connection, notifications,
 * theme, sign-out) and the current view.
 */
import { closeAction } from '@headway/protocol/codes';
import { useClient } from '@headway/react';
import { useEffect, useRef, useState } from 'react';
import { ConnectionIndicator } from './components/connection-indicator.js';
import { useNotifications } from './notifications.js';
import { Link, parseRoute, useLocation } from './router.js';
import type { Session } from './session.js';
import { type ThemeChoice, useTheme } from './theme.js';
import { JobView } from './views/job-view.js';
import { JobsView } from './views/jobs-view.js';
import { SystemView } from './views/system-view.js';

export interface AppProps {
  session: Session;
  /** Forget the token and show the token form, with a notice saying why. */
  onSignOut: (notice?: string) => void;
}

/** Longest delay `setTimeout` takes (about 24.8 days); a later expiry is left to the hub. */
const MAX_TIMER_MS = 2 ** 31 - 1;

const NOTIFICATION_LABELS = {
  on: 'Notifications on',
  off: 'Notifications off',
  denied: 'Notifications blocked',
  unsupported: 'Notifications unavailable',
} as const;

export function App({ session, onSignOut }: AppProps) {
  const client = useClient();
  const { pathname } = useLocation();
  const route = parseRoute(pathname);
  const [theme, setTheme] = useTheme();
  const [notifications, toggleNotifications] = useNotifications(client, session.scope);
  // On a phone the tools fold behind one button, so that the bar stays one line.
  const [menuOpen, setMenuOpen] = useState(false);

  // A close code that says "do not reconnect" ends the session: an expired or refused token.
  useEffect(
    () =>
      client.on('state', ({ newState, reason, code }) => {
        if (newState !== 'closed' || reason !== 'stop' || code === undefined) return;
        onSignOut(
          closeAction(code) === 'refresh-token'
            ? 'The session has expired: sign in again.'
            : `The hub closed the connection (code ${code}): sign in again.`,
        );
      }),
    [client, onSignOut],
  );

  // A token known to expire ends the session then, without waiting for the hub's next sweep.
  useEffect(() => {
    if (session.expiresAt === null) return;
    const left = session.expiresAt - Date.now();
    if (left > MAX_TIMER_MS) return;
    const timer = setTimeout(() => onSignOut('The session has expired: sign in again.'), Math.max(0, left));
    return () => clearTimeout(timer);
  }, [session.expiresAt, onSignOut]);

  // Moving to another view moves the focus to its heading, as a page load would.
  const viewKey = route.name === 'job' ? `job:${route.id}` : route.name;
  const firstView = useRef(true);
  useEffect(() => {
    if (firstView.current) {
      firstView.current = false;
      return;
    }
    document.querySelector<HTMLElement>('main h1')?.focus();
    if (viewKey !== 'job') document.title = 'Headway';
  }, [viewKey]);

  return (
    <div className="app">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <Link to="/" className="brand">
          <img src="/favicon.svg" alt="" width="22" height="22" />
          <span className="brand__name">Headway</span>
        </Link>
        <nav aria-label="Views" className="topbar__nav">
          <Link to="/" aria-current={route.name === 'jobs' || route.name === 'job' ? 'page' : undefined}>
            Jobs
          </Link>
          {session.privileged && (
            <Link to="/system" aria-current={route.name === 'system' ? 'page' : undefined}>
              System
            </Link>
          )}
        </nav>
        <ConnectionIndicator />
        <button
          type="button"
          className="topbar__menu"
          aria-expanded={menuOpen}
          aria-controls="topbar-tools"
          onClick={() => setMenuOpen((open) => !open)}
        >
          Menu
        </button>
        <div className="topbar__tools" id="topbar-tools" data-open={menuOpen}>
          <button
            type="button"
            aria-pressed={notifications === 'on'}
            disabled={notifications === 'unsupported' || notifications === 'denied'}
            title={
              notifications === 'denied'
                ? 'The browser blocks notifications for this site'
                : notifications === 'unsupported'
                  ? 'This browser cannot show notifications here'
                  : 'Notify me when a job completes or fails'
            }
            onClick={() => void toggleNotifications()}
          >
            {NOTIFICATION_LABELS[notifications]}
          </button>
          <label className="field field--inline">
            <span>Theme</span>
            <select value={theme} onChange={(e) => setTheme(e.target.value as ThemeChoice)}>
              <option value="system">System</option>
              <option value="light">Light</option>
              <option value="dark">Dark</option>
            </select>
          </label>
          <span className="who" title={session.privileged ? 'sees every job' : 'sees own jobs'}>
            {session.user ?? 'API key'}
            {session.privileged && session.user ? ' (admin)' : ''}
          </span>
          <button type="button" onClick={() => onSignOut()}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1} className={route.name === 'jobs' ? 'main main--fill' : 'main'}>
        {route.name === 'jobs' && <JobsView scope={session.scope} />}
        {route.name === 'job' && <JobView key={route.id} id={route.id} scope={session.scope} />}
        {route.name === 'system' && <SystemView privileged={session.privileged} />}
        {route.name === 'not-found' && (
          <div>
            <h1 tabIndex={-1}>Not found</h1>
            <p>
              Nothing lives at <code>{route.path}</code>. <Link to="/">See all jobs</Link>.
            </p>
          </div>
        )}
      </main>
    </div>
  );
}
