/**
 * Updates are applied once per animation frame: however many events arrive,
 * each store notifies React at most once per frame. Without
 * `requestAnimationFrame` (server, tests in Node) a 16 ms timer stands in.
 */
const dirty = new Set<() => void>();
let scheduled = false;

function run(): void {
  scheduled = false;
  const batch = [...dirty];
  dirty.clear();
  for (const flush of batch) flush();
}

/** Run `flush` in the next frame (once, however often this is called before). */
export function nextFrame(flush: () => void): void {
  dirty.add(flush);
  if (scheduled) return;
  scheduled = true;
  if (typeof requestAnimationFrame === 'function') requestAnimationFrame(run);
  else setTimeout(run, 16);
}

/** Forget a pending flush (its store was unsubscribed). */
export function cancelFrame(flush: () => void): void {
  dirty.delete(flush);
}
