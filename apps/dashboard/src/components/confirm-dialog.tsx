/**
 * A modal confirmation on the native `<dialog>`: focus moves into it and stays
 * there, Escape closes it, and focus returns to the button that opened it.
 * The safe choice has the initial focus.
 */
import { type ReactNode, useEffect, useId, useRef, useState } from 'react';

export interface ConfirmDialogProps {
  open: boolean;
  title: string;
  children?: ReactNode;
  /** Label of the button that goes ahead, e.g. "Cancel job". */
  confirmLabel: string;
  /** Label of the button that backs out. Default "Keep it". */
  dismissLabel?: string;
  /** Ask for an optional reason, passed to `onConfirm`. */
  reason?: boolean;
  danger?: boolean;
  onConfirm: (reason: string | undefined) => void;
  onClose: () => void;
}

export function ConfirmDialog({
  open,
  title,
  children,
  confirmLabel,
  dismissLabel = 'Keep it',
  reason,
  danger,
  onConfirm,
  onClose,
}: ConfirmDialogProps) {
  const ref = useRef<HTMLDialogElement>(null);
  const [text, setText] = useState('');
  const titleId = useId();
  const reasonId = useId();

  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) {
      setText('');
      dialog.showModal();
    } else if (!open && dialog.open) {
      dialog.close();
    }
  }, [open]);

  return (
    <dialog ref={ref} className="dialog" aria-labelledby={titleId} onClose={onClose}>
      <form
        method="dialog"
        onSubmit={(e) => {
          e.preventDefault();
          onConfirm(text.trim() || undefined);
        }}
      >
        <h2 id={titleId}>{title}</h2>
        {children}
        {reason && (
          <p className="field">
            <label htmlFor={reasonId}>Reason (optional)</label>
            <input
              id={reasonId}
              type="text"
              maxLength={200}
              value={text}
              onChange={(e) => setText(e.target.value)}
            />
          </p>
        )}
        <div className="dialog__actions">
          {/* biome-ignore lint/a11y/noAutofocus: the safe choice takes the focus of a confirmation. */}
          <button type="button" autoFocus onClick={onClose}>
            {dismissLabel}
          </button>
          <button type="submit" className={danger ? 'button--danger' : 'button--primary'}>
            {confirmLabel}
          </button>
        </div>
      </form>
    </dialog>
  );
}
