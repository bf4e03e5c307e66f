/**
 * Cancel, Pause and Resume for one job, each behind a confirmation, with the
 * hub's acknowledgement shown and then what the worker did about it.
 */
import type { ControlAction, HeadwayClientError, JobState } from '@headway/client';
import { useClient } from '@headway/react';
import { useState } from 'react';
import { formatClock, isActive } from '../format.js';
import { ConfirmDialog } from './confirm-dialog.js';

interface Ack {
  action: ControlAction;
  phase: 'sending' | 'acknowledged' | 'refused';
  at?: string;
  seq?: number;
  code?: string;
}

const VERBS: Record<ControlAction, { label: string; past: string; noun: string }> = {
  cancel: { label: 'Cancel', past: 'cancelled', noun: 'cancel' },
  pause: { label: 'Pause', past: 'paused', noun: 'pause' },
  resume: { label: 'Resume', past: 'resumed', noun: 'resume' },
};

/** What happened after the hub acknowledged: whether the worker has acted on it yet. */
function outcome(ack: Ack, job: JobState): string {
  if (ack.action === 'cancel') {
    if (job.status === 'cancelled') return 'The worker stopped: the job is cancelled.';
    if (!isActive(job)) return `The job ended first: it is ${job.status}.`;
    return 'Waiting for the worker to stop…';
  }
  if (ack.action === 'pause') {
    if (job.status === 'paused') return 'The worker paused.';
    if (!isActive(job)) return `The job ended first: it is ${job.status}.`;
    return 'Waiting for the worker to pause…';
  }
  if (job.status === 'running') return 'The worker resumed.';
  if (job.status === 'paused') return 'Waiting for the worker to resume…';
  return `The job is ${job.status}.`;
}

export function Controls({ job }: { job: JobState }) {
  const client = useClient();
  const [asking, setAsking] = useState<ControlAction | null>(null);
  const [ack, setAck] = useState<Ack | null>(null);
  const name = job.name || job.id;
  const sending = ack?.phase === 'sending';

  const send = async (action: ControlAction, reason: string | undefined) => {
    setAsking(null);
    setAck({ action, phase: 'sending' });
    try {
      const state = await client.control(job.id, action, reason);
      setAck({ action, phase: 'acknowledged', at: new Date().toISOString(), seq: state.seq });
    } catch (err) {
      setAck({ action, phase: 'refused', code: (err as HeadwayClientError).code ?? 'HW_ERR_INTERNAL' });
    }
  };

  const actions: ControlAction[] = [];
  if (isActive(job) && !job.control.cancelRequested) {
    if (job.status === 'paused' || job.control.paused) actions.push('resume');
    else actions.push('pause');
    actions.push('cancel');
  }

  const texts: Record<ControlAction, { title: string; body: string; confirm: string; dismiss: string }> = {
    cancel: {
      title: `Cancel “${name}”?`,
      body:
        'The worker is asked to stop at its next report. A job that has not started is cancelled at once; ' +
        'a batch cancels its unfinished items.',
      confirm: 'Cancel job',
      dismiss: 'Keep running',
    },
    pause: {
      title: `Pause “${name}”?`,
      body: 'The worker is asked to pause at its next report, and to wait until it is resumed.',
      confirm: 'Pause job',
      dismiss: 'Keep running',
    },
    resume: {
      title: `Resume “${name}”?`,
      body: 'The worker is asked to carry on where it paused.',
      confirm: 'Resume job',
      dismiss: 'Stay paused',
    },
  };
  const dialog = asking ? texts[asking] : null;
  if (actions.length === 0 && !ack) return null;

  return (
    <div className="controls">
      {actions.length > 0 && (
        <div className="controls__buttons">
          {actions.map((action) => (
            <button
              key={action}
              type="button"
              className={action === 'cancel' ? 'button--danger' : undefined}
              disabled={sending}
              onClick={() => setAsking(action)}
            >
              {VERBS[action].label}
            </button>
          ))}
        </div>
      )}
      <p className="controls__ack" role="status" data-phase={ack?.phase ?? ''}>
        {ack?.phase === 'sending' && `Sending the ${VERBS[ack.action].noun} request…`}
        {ack?.phase === 'acknowledged' && (
          <>
            <span className="ack__symbol" aria-hidden="true">
              ✓{' '}
            </span>
            {VERBS[ack.action].label} requested: acknowledged by the hub at {formatClock(ack.at!)} (seq{' '}
            {ack.seq}
            ). {outcome(ack, job)}
          </>
        )}
        {ack?.phase === 'refused' && (
          <>
            <span className="ack__symbol" aria-hidden="true">
              ✕{' '}
            </span>
            The hub refused the {VERBS[ack.action].noun} request: <code>{ack.code}</code>
          </>
        )}
      </p>
      <ConfirmDialog
        open={dialog !== null}
        title={dialog?.title ?? ''}
        confirmLabel={dialog?.confirm ?? ''}
        dismissLabel={dialog?.dismiss}
        reason
        danger={asking === 'cancel'}
        onConfirm={(reason) => asking && void send(asking, reason)}
        onClose={() => setAsking(null)}
      >
        <p>{dialog?.body}</p>
      </ConfirmDialog>
    </div>
  );
}
