import http from 'node:http';

/**
 * The HTTP side every comparison server of the bench shares: `POST /v1/jobs`
 * and `POST /v1/events` batches (the same requests the hub takes), handed to
 * `createJob` and `publish`. No authentication, no validation, no store.
 */
export function batchServer({ createJob, publish }) {
  return http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      let body;
      try {
        body = chunks.length > 0 ? JSON.parse(Buffer.concat(chunks).toString()) : {};
      } catch {
        return send(res, 400, { error: { code: 'HW_ERR_INVALID_MESSAGE', message: 'invalid JSON' } });
      }
      if (req.method === 'POST' && req.url === '/v1/jobs') return send(res, 201, createJob(body));
      if (req.method === 'POST' && req.url === '/v1/events') {
        const results = [];
        const at = new Date().toISOString();
        for (const input of body.events) results.push(publish(input, at));
        return send(res, 200, { results });
      }
      send(res, 404, { error: { code: 'HW_ERR_NOT_FOUND', message: 'no such route' } });
    });
  });
}

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** The job record the comparison servers keep: the seeds' task progress. */
export function newTask(id) {
  return { taskId: id, seq: 0, percentage: 0, stage: 'queued', timestamp: new Date().toISOString() };
}

/** Fold a progress event into the task, as the seeds' `update_progress` does. */
export function progress(task, input, at) {
  task.seq++;
  task.percentage = input.percent;
  task.stage = 'processing';
  task.timestamp = at;
  // `seq` lets the bench count missing and collapsed deliveries; the seeds' payloads have no such field.
  return { seq: task.seq, percentage: task.percentage, stage: task.stage, timestamp: at };
}
