/**
 * A windowed list: only the rows in view (and a few around them) are in the
 * DOM, so a thousand jobs cost what twenty do. Rows have one fixed height;
 * the list is as tall as its rows, or as the space it is given when that is less.
 *
 * Keyboard: the list is one Tab stop (a roving tabindex on each row's
 * `[data-row-focus]` element); ↑ ↓ Home End PageUp PageDown move between rows,
 * scrolling as needed; other keys go to `onRowKey` (→ and ← expand a batch).
 * The focused row stays rendered while scrolled out of view, so focus is
 * never lost to a recycled row.
 */
import {
  type FocusEvent,
  type KeyboardEvent,
  type ReactNode,
  useCallback,
  useEffect,
  useLayoutEffect,
  useRef,
  useState,
} from 'react';

export interface RowContext {
  index: number;
  /** The row holding the list's Tab stop: its `[data-row-focus]` element gets `tabIndex` 0. */
  active: boolean;
}

export interface VirtualListProps<T> {
  items: readonly T[];
  /** Height of every row, px. */
  rowHeight: number;
  getKey: (item: T) => string;
  renderRow: (item: T, row: RowContext) => ReactNode;
  /** Accessible name of the list. */
  label: string;
  /** Rows rendered beyond each edge of the view. Default 6. */
  overscan?: number;
  /** Keys the list does not handle itself, on a row; return true when handled. */
  onRowKey?: (item: T, event: KeyboardEvent) => boolean;
  className?: string;
}

const NAV_KEYS = new Set(['ArrowDown', 'ArrowUp', 'Home', 'End', 'PageDown', 'PageUp']);

export function VirtualList<T>({
  items,
  rowHeight,
  getKey,
  renderRow,
  label,
  overscan = 6,
  onRowKey,
  className,
}: VirtualListProps<T>) {
  const scroller = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [viewport, setViewport] = useState(600);
  const [activeKey, setActiveKey] = useState<string | null>(null);
  const lastIndex = useRef(0);
  const focusPending = useRef(false);
  const scrollFrame = useRef(0);

  // The scroll position is read once per frame, not on every scroll event (each read may force a layout).
  const onScroll = useCallback(() => {
    if (scrollFrame.current) return;
    scrollFrame.current = requestAnimationFrame(() => {
      scrollFrame.current = 0;
      if (scroller.current) setScrollTop(scroller.current.scrollTop);
    });
  }, []);
  useEffect(() => () => cancelAnimationFrame(scrollFrame.current), []);

  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    setViewport(el.clientHeight);
    const observer = new ResizeObserver(() => setViewport(el.clientHeight));
    observer.observe(el);
    return () => observer.disconnect();
  }, []);

  // The active row by key, so that it follows its item when the list reorders.
  let activeIndex = activeKey === null ? -1 : items.findIndex((item) => getKey(item) === activeKey);
  if (activeIndex < 0) activeIndex = Math.min(lastIndex.current, items.length - 1);
  lastIndex.current = Math.max(0, activeIndex);

  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - overscan);
  const last = Math.min(items.length - 1, Math.ceil((scrollTop + viewport) / rowHeight) + overscan);
  const indexes: number[] = [];
  if (activeIndex >= 0 && activeIndex < first) indexes.push(activeIndex);
  for (let i = first; i <= last; i++) indexes.push(i);
  if (activeIndex > last) indexes.push(activeIndex);

  const moveTo = useCallback(
    (index: number) => {
      const el = scroller.current;
      const item = items[index];
      if (!el || item === undefined) return;
      const top = index * rowHeight;
      if (top < el.scrollTop) el.scrollTop = top;
      else if (top + rowHeight > el.scrollTop + el.clientHeight)
        el.scrollTop = top + rowHeight - el.clientHeight;
      setScrollTop(el.scrollTop);
      focusPending.current = true;
      setActiveKey(getKey(item));
    },
    [items, rowHeight, getKey],
  );

  // Focus moves after the row it goes to is rendered.
  useEffect(() => {
    if (!focusPending.current) return;
    focusPending.current = false;
    const target = scroller.current?.querySelector<HTMLElement>(
      `[data-index="${activeIndex}"] [data-row-focus]`,
    );
    target?.focus({ preventScroll: true });
  });

  const rowOf = (target: EventTarget | null): number => {
    const row = (target as HTMLElement | null)?.closest?.('[data-index]');
    return row ? Number(row.getAttribute('data-index')) : -1;
  };

  const onKeyDown = (e: KeyboardEvent<HTMLDivElement>) => {
    const index = rowOf(e.target);
    if (index < 0 || items[index] === undefined) return;
    if (!NAV_KEYS.has(e.key)) {
      if (onRowKey?.(items[index], e)) e.preventDefault();
      return;
    }
    const page = Math.max(1, Math.floor(viewport / rowHeight) - 1);
    const next = {
      ArrowDown: index + 1,
      ArrowUp: index - 1,
      Home: 0,
      End: items.length - 1,
      PageDown: index + page,
      PageUp: index - page,
    }[e.key as 'Home'];
    e.preventDefault();
    moveTo(Math.max(0, Math.min(items.length - 1, next)));
  };

  const onFocus = (e: FocusEvent<HTMLDivElement>) => {
    const index = rowOf(e.target);
    const item = items[index];
    if (item !== undefined && getKey(item) !== activeKey) setActiveKey(getKey(item));
  };

  return (
    // biome-ignore lint/a11y/noStaticElementInteractions: keys and focus bubble up from the rows' links; the container itself takes no focus.
    <div
      ref={scroller}
      className={className ? `vlist ${className}` : 'vlist'}
      // As tall as its rows, so that a short list leaves no empty box; the stylesheet lets it shrink to the space there is.
      style={{ height: items.length * rowHeight }}
      onScroll={onScroll}
      onKeyDown={onKeyDown}
      onFocus={onFocus}
    >
      <ul aria-label={label} className="vlist__items" style={{ height: items.length * rowHeight }}>
        {indexes.map((index) => {
          const item = items[index]!;
          return (
            <li
              key={getKey(item)}
              aria-posinset={index + 1}
              aria-setsize={items.length}
              data-index={index}
              className="vlist__row"
              style={{ position: 'absolute', top: index * rowHeight, left: 0, right: 0, height: rowHeight }}
            >
              {renderRow(item, { index, active: index === activeIndex })}
            </li>
          );
        })}
      </ul>
    </div>
  );
}
