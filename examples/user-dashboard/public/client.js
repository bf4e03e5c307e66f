// The seed-4 dashboard: the useWebSocket() hook's effect, without React. One
// socket for all of the user's jobs at /api/ws/progress?token=…, the latest
// update kept per job_id, reconnect after 3, 6, 12 … 30 s, and after a
// reconnect the missed updates read from /api/jobs/{id}/progress-history.

const jobProgress = new Map();
let token = null;
let hubWs = null;

async function getAuthToken() {
  if (token === null) ({ token, hubWs } = await (await fetch('/app/token')).json());
  return token;
}

function render() {
  const dashboard = document.getElementById('dashboard');
  dashboard.replaceChildren(
    ...[...jobProgress.values()].map((p) => {
      const job = document.createElement('div');
      job.className = 'job';
      const header = document.createElement('div');
      header.className = 'row';
      header.append(Object.assign(document.createElement('span'), { textContent: p.message }));
      header.append(Object.assign(document.createElement('span'), { textContent: `${p.progress}%` }));
      const track = Object.assign(document.createElement('div'), { className: 'track' });
      const fill = Object.assign(document.createElement('div'), { className: `fill ${p.status}` });
      fill.style.width = `${p.progress}%`;
      track.append(fill);
      const footer = document.createElement('div');
      footer.className = 'row';
      footer.append(
        Object.assign(document.createElement('span'), {
          textContent: `${p.current_video}/${p.total_videos} videos`,
        }),
      );
      footer.append(Object.assign(document.createElement('span'), { textContent: p.status }));
      job.append(header, track, footer);
      if (p.error)
        job.append(Object.assign(document.createElement('div'), { textContent: `Error: ${p.error}` }));
      return job;
    }),
  );
}

async function fetchMissed() {
  for (const [id, p] of jobProgress) {
    if (p.status !== 'pending' && p.status !== 'processing') continue;
    const since = new Date(p.timestamp).toISOString();
    const res = await fetch(`/api/jobs/${id}/progress-history?since=${encodeURIComponent(since)}`, {
      headers: { Authorization: `Bearer ${await getAuthToken()}` },
    });
    if (!res.ok) continue;
    for (const update of await res.json()) {
      if ((jobProgress.get(update.job_id)?.timestamp ?? 0) <= update.timestamp)
        jobProgress.set(update.job_id, update);
    }
  }
  render();
}

let retryCount = 0;
let opened = false;

async function connect() {
  const ws = new WebSocket(`${hubWs}/api/ws/progress?token=${await getAuthToken()}`);
  ws.onopen = () => {
    document.getElementById('banner').textContent = '';
    retryCount = 0;
    if (opened) fetchMissed();
    opened = true;
  };
  ws.onmessage = (event) => {
    const update = JSON.parse(event.data);
    jobProgress.set(update.job_id, update);
    render();
  };
  ws.onclose = () => {
    document.getElementById('banner').textContent = 'Reconnecting...';
    // Exponential backoff: 3s, 6s, 12s, max 30s
    const backoff = Math.min(3000 * 2 ** retryCount, 30000);
    retryCount++;
    setTimeout(connect, backoff);
  };
}

// Remove finished jobs after 5 minutes, checked every minute.
setInterval(() => {
  for (const [id, p] of jobProgress) {
    if (p.status !== 'processing' && Date.now() - (p.timestamp || 0) >= 5 * 60 * 1000) jobProgress.delete(id);
  }
  render();
}, 60000);

document.getElementById('import').onclick = () => fetch('/app/import', { method: 'POST' });
getAuthToken().then(connect);
