/**
 * The token form, for when the page was opened without the start-up link (or
 * the token expired). The token is checked against the hub before it is kept.
 */
import { type FormEvent, useId, useState } from 'react';

export interface LoginViewProps {
  /** Why the form is shown again, if it is. */
  notice?: string | null;
  onLogin: (token: string) => void;
}

export function LoginView({ notice, onLogin }: LoginViewProps) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [checking, setChecking] = useState(false);
  const inputId = useId();
  const helpId = useId();

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const value = token.trim();
    if (!value) {
      setError('Paste a token first.');
      return;
    }
    setChecking(true);
    setError(null);
    try {
      const res = await fetch('/v1/jobs?limit=1', { headers: { authorization: `Bearer ${value}` } });
      if (res.ok) {
        onLogin(value);
        return;
      }
      const body = (await res.json().catch(() => null)) as { error?: { code?: string } } | null;
      const code = body?.error?.code ?? `HTTP ${res.status}`;
      setError(
        code === 'HW_ERR_TOKEN_EXPIRED'
          ? 'This token has expired (HW_ERR_TOKEN_EXPIRED).'
          : `The hub did not accept this token (${code}).`,
      );
    } catch {
      setError('The hub cannot be reached.');
    } finally {
      setChecking(false);
    }
  };

  return (
    <main className="login" id="main">
      <form className="card login__card" onSubmit={submit} aria-describedby={helpId}>
        <h1>Headway</h1>
        {notice && (
          <p className="notice" role="status">
            {notice}
          </p>
        )}
        <p id={helpId}>
          Sign in with a browser token (minted by your back end with <code>POST /v1/tokens</code>) or an API
          key. In development, open the <strong>Dashboard</strong> link that <code>headway start</code>{' '}
          prints.
        </p>
        <p className="field">
          <label htmlFor={inputId}>Token</label>
          <input
            id={inputId}
            type="password"
            autoComplete="off"
            spellCheck={false}
            value={token}
            onChange={(e) => setToken(e.target.value)}
            aria-invalid={error !== null}
            aria-errormessage={error ? `${inputId}-error` : undefined}
          />
        </p>
        {error && (
          <p id={`${inputId}-error`} className="notice notice--error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" className="button--primary" disabled={checking}>
          {checking ? 'Checking…' : 'Sign in'}
        </button>
        <p className="muted">The token is kept in this tab only, until it is closed.</p>
      </form>
    </main>
  );
}
