/**
 * Whether a CSS media query matches, live: the views that lay out rows of a
 * fixed height (the windowed jobs list) need to know what the stylesheet does.
 */
import { useCallback, useSyncExternalStore } from 'react';

/** The width below which the dashboard lays itself out for a phone. Keep in step with styles.css. */
export const NARROW_QUERY = '(max-width: 700px)';

export function useMediaQuery(query: string): boolean {
  const subscribe = useCallback(
    (notify: () => void) => {
      const list = window.matchMedia(query);
      list.addEventListener('change', notify);
      return () => list.removeEventListener('change', notify);
    },
    [query],
  );
  return useSyncExternalStore(subscribe, () => window.matchMedia(query).matches);
}
