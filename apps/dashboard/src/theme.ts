/**
 * Light and dark themes: the system's preference (`prefers-color-scheme`) unless
 * the user picked one, remembered in localStorage. The stylesheet does the rest
 * with `color-scheme` and `light-dark()`.
 */
import { useCallback, useState } from 'react';

export type ThemeChoice = 'system' | 'light' | 'dark';
const STORAGE_KEY = 'headway.theme';

export function storedTheme(): ThemeChoice {
  try {
    const value = window.localStorage.getItem(STORAGE_KEY);
    return value === 'light' || value === 'dark' ? value : 'system';
  } catch {
    return 'system';
  }
}

/** Set the theme on the document (before the first render too, to avoid a flash). */
export function applyTheme(choice: ThemeChoice): void {
  const root = document.documentElement;
  if (choice === 'system') delete root.dataset.theme;
  else root.dataset.theme = choice;
}

export function useTheme(): [ThemeChoice, (choice: ThemeChoice) => void] {
  const [theme, setTheme] = useState<ThemeChoice>(storedTheme);
  const choose = useCallback((choice: ThemeChoice) => {
    applyTheme(choice);
    try {
      if (choice === 'system') window.localStorage.removeItem(STORAGE_KEY);
      else window.localStorage.setItem(STORAGE_KEY, choice);
    } catch {
      // Not remembered; applied anyway.
    }
    setTheme(choice);
  }, []);
  return [theme, choose];
}
