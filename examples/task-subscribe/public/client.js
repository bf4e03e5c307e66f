// The seed-1 front end: a WebSocket manager that subscribes to one task with
// its token on open, pings every 30 s, reconnects after 1, 2, 4, 8 and 16 s and
// then falls back to polling, publishing domain events to the page.

const ui = {
  stage: document.getElementById('stage'),
  bar: document.getElementById('bar'),
  detail: document.getElementById('detail'),
  result: document.getElementById('result'),
  log: document.getElementById('log'),
};

const eventBus = {
  publish(name, payload) {
    ui.log.textContent = `${name} ${JSON.stringify(payload)}\n${ui.log.textContent}`.slice(0, 4000);
    switch (name) {
      case 'ProgressUpdated': {
        ui.stage.textContent = `Stage: ${payload.stage}`;
        ui.bar.value = payload.percentage;
        const mib = (n) => (n / 1024 / 1024).toFixed(1);
        ui.detail.textContent =
          payload.bytesProcessed === undefined
            ? ''
            : `${mib(payload.bytesProcessed)} of ${mib(payload.bytesTotal)} MiB` +
              (payload.processingSpeed ? `, ${mib(payload.processingSpeed)} MiB/s` : '');
        break;
      }
      case 'TimeEstimateUpdated':
        ui.detail.textContent += ` (about ${payload.estimatedTimeRemaining} s left)`;
        break;
      case 'ProgressCompleted': {
        const link = Object.assign(document.createElement('a'), {
          href: payload.resultUrl,
          textContent: 'transcript',
        });
        ui.result.replaceChildren(`Done in ${payload.duration} s: `, link);
        break;
      }
      case 'ProgressFailed':
        ui.result.textContent = `Failed: ${payload.code} ${payload.message}`;
        break;
    }
  },
};

const pollingService = {
  startPolling(taskId, token) {
    const timer = setInterval(async () => {
      const res = await fetch(`/api/progress/${taskId}`, { headers: { Authorization: `Bearer ${token}` } });
      const task = await res.json();
      eventBus.publish('ProgressUpdated', task.payload);
      if (task.complete) eventBus.publish('ProgressCompleted', task.complete);
      if (task.error) eventBus.publish('ProgressFailed', task.error);
      if (['completed', 'failed', 'cancelled'].includes(task.status)) clearInterval(timer);
    }, 2000);
  },
};

class ProgressWebSocketManager {
  constructor(baseUrl) {
    this.baseUrl = baseUrl;
    this.ws = null;
    this.reconnectAttempts = 0;
    this.maxReconnectAttempts = 5;
    this.reconnectDelay = 1000;
    this.heartbeatInterval = null;
  }

  connect(taskId, token) {
    this.ws = new WebSocket(`${this.baseUrl}/ws/progress/${taskId}`);
    this.ws.onopen = () => {
      this.reconnectAttempts = 0;
      this.reconnectDelay = 1000;
      this.send({ type: 'subscribe', taskId, token });
      this.startHeartbeat();
    };
    this.ws.onmessage = (event) => this.handleMessage(JSON.parse(event.data));
    this.ws.onclose = () => {
      this.stopHeartbeat();
      this.attemptReconnect(taskId, token);
    };
    this.ws.onerror = (error) => console.error('WebSocket error:', error);
  }

  send(message) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  handleMessage(message) {
    const events = {
      progress_update: 'ProgressUpdated',
      stage_change: 'StageChanged',
      time_estimate: 'TimeEstimateUpdated',
      complete: 'ProgressCompleted',
      error: 'ProgressFailed',
    };
    if (events[message.type]) eventBus.publish(events[message.type], message.payload);
  }

  startHeartbeat() {
    this.heartbeatInterval = setInterval(() => this.send({ type: 'ping', timestamp: Date.now() }), 30000);
  }

  stopHeartbeat() {
    clearInterval(this.heartbeatInterval);
    this.heartbeatInterval = null;
  }

  attemptReconnect(taskId, token) {
    if (this.reconnectAttempts >= this.maxReconnectAttempts) {
      pollingService.startPolling(taskId, token);
      return;
    }
    this.reconnectAttempts++;
    const delay = this.reconnectDelay * 2 ** (this.reconnectAttempts - 1);
    setTimeout(() => this.connect(taskId, token), delay);
  }
}

document.getElementById('start').onclick = async () => {
  const { taskId, token, hubWs } = await (await fetch('/app/start', { method: 'POST' })).json();
  new ProgressWebSocketManager(hubWs).connect(taskId, token);
};
