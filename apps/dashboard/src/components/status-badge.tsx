/**
 * A job's status as a word with a shape: colour is never the only signal
 * (the word is always there, and each status has its own symbol).
 */
import type { JobStatus } from '@headway/client';

const SYMBOLS: Record<JobStatus, string> = {
  queued: '○',
  running: '▶',
  paused: '❚❚',
  completed: '✓',
  failed: '✕',
  cancelled: '⊘',
};

export function StatusBadge({ status, cancelling }: { status: JobStatus; cancelling?: boolean }) {
  return (
    <span className="status" data-status={status}>
      <span className="status__symbol" aria-hidden="true">
        {SYMBOLS[status]}
      </span>
      <span className="status__text">{status}</span>
      {cancelling && <span className="status__note"> · cancelling</span>}
    </span>
  );
}
