// The seed-2 front end: the useJobProgress(jobId) hook's effect, without React.
// The stream is opened without a token (the session cookie carries it); on a
// connection error the seed's strategy retries after 2, 4, 8, 10 and 10 s, then
// polls /api/v1/jobs/{id} every 2 s.

const setProgress = (p) => {
  document.getElementById('bar').value = p;
};
const setStatus = (s) => {
  document.getElementById('status').textContent = `Status: ${s}`;
};
const setError = (e) => {
  document.getElementById('error').textContent = e ?? '';
};
const setMessage = (m) => {
  document.getElementById('message').textContent = m ?? '';
};
const fetchScore = (url) => {
  setMessage(`Score ready at ${url}`);
};

let reconnectAttempts = 0;
const MAX_RECONNECTS = 5;

function jobProgressEffect(hubWs, jobId) {
  const ws = new WebSocket(`${hubWs}/api/v1/jobs/${jobId}/stream`);
  ws.onopen = () => setStatus('processing');
  ws.onmessage = (event) => {
    const update = JSON.parse(event.data);
    switch (update.type) {
      case 'progress':
        setProgress(update.progress);
        setMessage(`${update.stage}: ${update.message}`);
        break;
      case 'completed':
        setProgress(100);
        setStatus('completed');
        fetchScore(update.result_url);
        break;
      case 'error':
        setStatus('failed');
        setError(update.error.message + (update.error.retryable ? ' (retryable)' : ''));
        break;
      case 'heartbeat':
        ws.send(JSON.stringify({ type: 'pong', timestamp: new Date().toISOString() }));
        break;
    }
  };
  ws.onerror = () => {
    if (reconnectAttempts < MAX_RECONNECTS) {
      reconnectAttempts++;
      const delay = Math.min(1000 * 2 ** reconnectAttempts, 10000);
      setTimeout(() => jobProgressEffect(hubWs, jobId), delay);
    } else {
      pollJobStatus(jobId);
    }
  };
  return () => ws.close();
}

function pollJobStatus(jobId) {
  const interval = setInterval(async () => {
    const response = await fetch(`/api/v1/jobs/${jobId}`);
    const job = await response.json();
    setProgress(job.progress);
    setStatus(job.status);
    if (job.status === 'completed' || job.status === 'failed') clearInterval(interval);
  }, 2000);
}

document.getElementById('start').onclick = async () => {
  const start = await fetch(`/app/start${location.search.includes('fail') ? '?fail' : ''}`, {
    method: 'POST',
  });
  const { jobId, token, hubWs } = await start.json();
  // The hub sets the HttpOnly session cookie; the page never keeps the token.
  await fetch('/v1/session', { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
  setError(null);
  setStatus('connecting');
  jobProgressEffect(hubWs, jobId);
};
