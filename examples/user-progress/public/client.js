// The seed-0 front end: one WebSocket per user at /ws/{userId}, opened without a
// credential (the HttpOnly cookie carries it), and updateProgress(stage,
// progress, eta_seconds) for every message.

function updateProgress(stage, progress, etaSeconds) {
  document.getElementById('stage').textContent = `Stage: ${stage}`;
  document.getElementById('bar').value = progress;
  document.getElementById('eta').textContent =
    etaSeconds === null || etaSeconds === undefined ? '' : `About ${etaSeconds} s left`;
}

async function main() {
  const { hubWs, userId } = await (await fetch('/app/config')).json();
  let ws = null;
  document.getElementById('start').onclick = async () => {
    // The back end starts a job and sets the cookie; the socket is opened once.
    await fetch('/app/start', { method: 'POST' });
    if (ws !== null) return;
    ws = new WebSocket(`${hubWs}/ws/${userId}`);
    ws.onmessage = (event) => {
      const data = JSON.parse(event.data);
      updateProgress(data.stage, data.progress, data.eta_seconds);
    };
  };
}

main();
