/**
 * Entry point: pick up the token (URL fragment or this tab's storage), then
 * show the dashboard, or the token form without one.
 */
import { createClient, type HeadwayClient } from '@headway/client';
import { HeadwayProvider } from '@headway/react';
import { StrictMode, useCallback, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './app.js';
import { clearToken, describeToken, loadToken, type Session, saveToken } from './session.js';
import { applyTheme, storedTheme } from './theme.js';
import { LoginView } from './views/login-view.js';
import './styles.css';

interface Signed {
  session: Session;
  client: HeadwayClient;
}

// The client lives as long as the sign-in, outside React's effects (which
// StrictMode runs twice): it is closed when the user signs out.
function signIn(token: string): Signed {
  const client = createClient({ url: window.location.origin, token });
  // Connected from the start, so that the indicator tells the truth on every view.
  client.connect();
  return { session: describeToken(token), client };
}

function Root() {
  const [signed, setSigned] = useState<Signed | null>(() => {
    const token = loadToken();
    return token ? signIn(token) : null;
  });
  const [notice, setNotice] = useState<string | null>(null);

  const signOut = useCallback((message?: string) => {
    clearToken();
    setNotice(message ?? null);
    setSigned((current) => {
      current?.client.close();
      return null;
    });
  }, []);

  if (!signed) {
    return (
      <LoginView
        notice={notice}
        onLogin={(token) => {
          saveToken(token);
          setNotice(null);
          setSigned(signIn(token));
        }}
      />
    );
  }
  return (
    <HeadwayProvider client={signed.client}>
      <App session={signed.session} onSignOut={signOut} />
    </HeadwayProvider>
  );
}

applyTheme(storedTheme());
createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <Root />
  </StrictMode>,
);
