const TICK_MS = 5; // pacing resolution of the open-loop publisher

/** A percent that keeps rising through a run and stays within 0–100. */
function percentFor(n) {
  return (n % 1000) / 10;
}

/**
 * Open-loop publisher for the fan-out benchmarks: `eventsPerJobPerSecond` progress
 * events for every job, posted to `POST /v1/events` in batches of `batchSize`
 * (consecutive jobs, round robin), each batch sent on its schedule whether or not
 * earlier ones were answered, up to `maxInFlight` requests on the wire.
 * Resolves when every batch was answered, with the events each job accepted.
 */
export function offerEvents(client, { jobs, eventsPerJobPerSecond, durationMs, batchSize, maxInFlight }) {
  const accepted = new Map(jobs.map((job) => [job, 0]));
  const sentPerJob = new Map(jobs.map((job) => [job, 0]));
  const batchesPerSecond = (eventsPerJobPerSecond * jobs.length) / batchSize;
  const totalBatches = Math.round((durationMs / 1000) * batchesPerSecond);
  const stats = {
    batches: 0,
    events: 0,
    failedRequests: 0,
    rejectedEvents: 0,
    firstError: null,
    lastSentAt: 0,
  };
  let cursor = 0;
  let inFlight = 0;
  const start = performance.now();

  return new Promise((resolve) => {
    const finishIfDone = () => {
      if (stats.batches === totalBatches && inFlight === 0) {
        resolve({
          ...stats,
          accepted,
          startedAt: start,
          sendSeconds: (stats.lastSentAt - start) / 1000,
          scheduledPerSecond: batchesPerSecond * batchSize,
        });
      }
    };

    const send = () => {
      const events = [];
      for (let i = 0; i < batchSize; i++) {
        const job = jobs[cursor++ % jobs.length];
        const n = sentPerJob.get(job) + 1;
        sentPerJob.set(job, n);
        events.push({ job, kind: 'progress', percent: percentFor(n) });
      }
      stats.batches++;
      stats.events += events.length;
      stats.lastSentAt = performance.now();
      inFlight++;
      client
        .request('POST', '/v1/events', { events })
        .then((res) => {
          if (res.status < 200 || res.status >= 300) {
            stats.failedRequests++;
            stats.firstError ??= `POST /v1/events answered ${res.status}: ${res.text.slice(0, 200)}`;
            return;
          }
          const results = Array.isArray(res.body) ? res.body : (res.body?.results ?? []);
          const failed = new Set();
          for (const r of results) {
            if (r?.error) {
              failed.add(r.job);
              stats.firstError ??= `${r.job}: ${r.error.code} ${r.error.message}`;
            }
          }
          for (const e of events) {
            if (failed.has(e.job)) stats.rejectedEvents++;
            else accepted.set(e.job, accepted.get(e.job) + 1);
          }
        })
        .catch((err) => {
          stats.failedRequests++;
          stats.firstError ??= String(err);
        })
        .finally(() => {
          inFlight--;
          finishIfDone();
        });
    };

    const timer = setInterval(() => {
      const due = Math.min(
        totalBatches,
        Math.floor(((performance.now() - start) / 1000) * batchesPerSecond) + 1,
      );
      while (stats.batches < due && inFlight < maxInFlight) send();
      if (stats.batches === totalBatches) {
        clearInterval(timer);
        finishIfDone();
      }
    }, TICK_MS);
  });
}

/**
 * Closed-loop ingest: `concurrency` lanes, each posting batches of `batchSize`
 * progress events to `POST /v1/jobs/:id/events` for its own share of the jobs
 * (so that no two requests for one job race), the next request as soon as the
 * previous one is answered, until `durationMs` has passed.
 */
export async function ingestEvents(client, { jobs, batchSize, concurrency, durationMs }) {
  const stats = { acknowledged: 0, requests: 0, failedRequests: 0, firstError: null };
  const latencies = [];
  const start = performance.now();
  const end = start + durationMs;
  let lastAnswerAt = start;

  async function lane(k) {
    const own = jobs.filter((_, i) => i % concurrency === k);
    const counts = new Map(own.map((job) => [job, 0]));
    for (let r = 0; performance.now() < end; r++) {
      const job = own[r % own.length];
      const events = [];
      for (let i = 0; i < batchSize; i++) {
        const n = counts.get(job) + 1;
        counts.set(job, n);
        events.push({ kind: 'progress', percent: percentFor(n) });
      }
      const sentAt = performance.now();
      const res = await client.request('POST', `/v1/jobs/${encodeURIComponent(job)}/events`, { events });
      lastAnswerAt = performance.now();
      latencies.push(lastAnswerAt - sentAt);
      stats.requests++;
      if (res.status >= 200 && res.status < 300) stats.acknowledged += batchSize;
      else {
        stats.failedRequests++;
        stats.firstError ??= `answered ${res.status}: ${res.text.slice(0, 200)}`;
      }
    }
  }

  await Promise.all(Array.from({ length: Math.min(concurrency, jobs.length) }, (_, k) => lane(k)));
  latencies.sort((a, b) => a - b);
  const seconds = (lastAnswerAt - start) / 1000;
  return {
    ...stats,
    seconds,
    eventsPerSecond: stats.acknowledged / seconds,
    latencyMs: { p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), max: latencies.at(-1) ?? 0 },
  };
}

function quantile(sorted, q) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}
