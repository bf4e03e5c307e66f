/**
 * Opt-in browser notifications when a job completes or fails. Off until the
 * user turns them on (which asks the browser's permission); the choice is
 * remembered in localStorage. Only top-level jobs notify: a batch says how it
 * ended once, not once per item.
 */
import type { HeadwayClient, JobEventContext } from '@headway/client';
import { useCallback, useEffect, useState } from 'react';
import { jobPath, navigate } from './router.js';

const STORAGE_KEY = 'headway.notifications';

export type NotificationSetting = 'unsupported' | 'denied' | 'off' | 'on';

function supported(): boolean {
  return typeof window.Notification === 'function';
}

function initial(): NotificationSetting {
  if (!supported()) return 'unsupported';
  if (Notification.permission === 'denied') return 'denied';
  let wanted = false;
  try {
    wanted = window.localStorage.getItem(STORAGE_KEY) === 'on';
  } catch {
    // Not remembered.
  }
  return wanted && Notification.permission === 'granted' ? 'on' : 'off';
}

function remember(on: boolean): void {
  try {
    if (on) window.localStorage.setItem(STORAGE_KEY, 'on');
    else window.localStorage.removeItem(STORAGE_KEY);
  } catch {
    // Applies to this page only.
  }
}

function show({ event, state }: JobEventContext): void {
  if (state.parent !== null) return;
  const failed = event.kind === 'failed';
  const title = `${failed ? 'Failed' : 'Completed'}: ${state.name || state.id}`;
  const result = state.result as { url?: unknown } | null;
  const body = failed
    ? `${state.error?.code ?? 'error'}: ${state.error?.message ?? ''}`
    : typeof result?.url === 'string'
      ? result.url
      : `Job ${state.id} completed.`;
  try {
    const n = new Notification(title, { body, tag: `headway:${state.id}` });
    n.onclick = () => {
      window.focus();
      navigate(jobPath(state.id));
      n.close();
    };
  } catch {
    // Some browsers allow notifications from service workers only: nothing to show then.
  }
}

/**
 * The notification setting and a toggle. While on, a collection of the scope's
 * jobs listens for `completed` and `failed` events as they happen (a reload
 * does not repeat old ones: the first snapshot carries states, not events).
 */
export function useNotifications(
  client: HeadwayClient,
  scope: 'user' | 'all',
): [NotificationSetting, () => Promise<void>] {
  const [setting, setSetting] = useState<NotificationSetting>(initial);

  const toggle = useCallback(async () => {
    if (setting === 'unsupported') return;
    if (setting === 'on') {
      remember(false);
      setSetting('off');
      return;
    }
    const permission =
      Notification.permission === 'default'
        ? await Notification.requestPermission()
        : Notification.permission;
    if (permission === 'granted') {
      remember(true);
      setSetting('on');
    } else {
      setSetting(permission === 'denied' ? 'denied' : 'off');
    }
  }, [setting]);

  useEffect(() => {
    if (setting !== 'on') return;
    const jobs = client.jobs({ scope });
    const offs = [jobs.on('completed', show), jobs.on('failed', show)];
    return () => {
      for (const off of offs) off();
      jobs.close();
    };
  }, [client, scope, setting]);

  return [setting, toggle];
}
