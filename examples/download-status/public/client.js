// The seed-3 front end: the useWebSocket(jobId) hook's effect, without React,
// with the guide's keep-alive (a text "ping" every 30 s) and its reconnection
// (on any close but 1000, after 1, 2, 4, 8 and 16 s). No credential at all:
// the job is public.

function setStatus(data) {
  document.getElementById('status').textContent = `${data.status}${data.error ? `: ${data.error}` : ''}`;
  document.getElementById('bar').value = data.progress;
  if (data.videoInfo) {
    document.getElementById('title').textContent = `${data.videoInfo.title} (${data.videoInfo.quality})`;
  }
  if (data.downloadUrl) {
    const link = Object.assign(document.createElement('a'), {
      href: data.downloadUrl,
      textContent: 'Download',
    });
    const size = data.fileSize
      ? ` ${(data.fileSize / 1024 / 1024).toFixed(1)} MiB on ${data.storageProvider}`
      : '';
    document.getElementById('result').replaceChildren(link, size);
  }
}

function setIsConnected(connected) {
  const el = document.getElementById('connection');
  el.className = connected ? 'on' : 'off';
  el.textContent = connected ? '● Connected' : '● Disconnected';
}

let reconnectAttempts = 0;
const maxReconnectAttempts = 5;

function connect(hubWs, jobId) {
  const ws = new WebSocket(`${hubWs}/ws/download/${jobId}`);
  let pingInterval = null;
  ws.onopen = () => {
    setIsConnected(true);
    reconnectAttempts = 0;
    pingInterval = setInterval(() => {
      if (ws.readyState === WebSocket.OPEN) ws.send('ping');
    }, 30000);
  };
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === 'status') setStatus(message.data);
  };
  ws.onclose = (event) => {
    clearInterval(pingInterval);
    setIsConnected(false);
    if (event.code !== 1000 && reconnectAttempts < maxReconnectAttempts) {
      const delay = Math.min(1000 * 2 ** reconnectAttempts, 30000);
      setTimeout(() => {
        reconnectAttempts++;
        connect(hubWs, jobId);
      }, delay);
    }
  };
}

document.getElementById('start').onclick = async () => {
  const { jobId, hubWs } = await (await fetch('/app/start', { method: 'POST' })).json();
  connect(hubWs, jobId);
};
