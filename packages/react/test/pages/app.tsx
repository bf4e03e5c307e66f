/**
 * A page for the React browser test: `useJob` and `<ProgressBar>` under
 * StrictMode, recording every value the progress bar showed.
 */
import { createClient } from '@headway/client';
import { HeadwayProvider, ProgressBar, useConnection, useJob } from '@headway/react';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';

declare global {
  interface Window {
    shown: string[];
    renders: number;
  }
}

function App({ id }: { id: string }) {
  const { job } = useJob(id);
  const { state, transport } = useConnection();
  window.renders++;
  return (
    <main>
      <p id="connection">{`${state} ${transport ?? ''}`}</p>
      <h1>{job?.name ?? 'loading'}</h1>
      <ProgressBar job={job} />
    </main>
  );
}

const q = new URLSearchParams(location.search);
window.shown = [];
window.renders = 0;
const client = createClient({ url: q.get('hub')!, token: q.get('token')! });
createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <HeadwayProvider client={client}>
      <App id={q.get('job')!} />
    </HeadwayProvider>
  </StrictMode>,
);
// Every value the bar takes, as assistive technology would read it.
new MutationObserver(() => {
  const bar = document.querySelector('[role="progressbar"]');
  const text = bar?.getAttribute('aria-valuetext');
  if (text && window.shown.at(-1) !== text) window.shown.push(text);
}).observe(document.body, { subtree: true, attributes: true, childList: true });
