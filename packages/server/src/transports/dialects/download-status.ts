/**
 * download-status (seed 3, a video downloader): `/ws/download/{job_id}` sends the
 * job's status at once, then `{type: "status", data: {jobId, status, progress,
 * videoInfo, downloadUrl, error, storageProvider, fileSize}}` on every change; a
 * text `ping` is answered with `{"type":"pong"}`. `GET /api/status/{jobId}`
 * answers the same `data` for the client's polling.
 *
 * The seed's client sends no credential at all, so this dialect serves only jobs
 * created with `public: true`: whoever holds such a job's id may watch it. Any
 * other id, existing or not, is answered alike: a `failed` status with the error
 * `job not found` and a 1000 close (over REST, 404).
 */
import type { JobState, Json } from '@headway/protocol';
import type { Delivery } from '../../delivery.js';
import { notFound } from '../../errors.js';
import { DialectClose, DialectConnection, type Snapshot } from './base.js';
import {
  reported,
  reportedNumber,
  reportedString,
  resultUrl,
  UNSHOWN_KINDS,
  wholePercent,
} from './fields.js';
import type { Dialect, DialectEnv } from './index.js';

export interface DownloadStatus {
  jobId: string;
  status: 'queued' | 'processing' | 'completed' | 'failed';
  /** Whole percent 0–100. */
  progress: number;
  /** The job's `videoInfo` (metadata or result), e.g. `{id, title, thumbnail, duration, quality}`. */
  videoInfo?: Json;
  downloadUrl?: string;
  /** The failure's message (`cancelled` for a cancelled job). */
  error?: string;
  storageProvider?: string;
  /** Bytes. */
  fileSize?: number;
}

const PONG = Buffer.from(JSON.stringify({ type: 'pong' }));
/** The answer for an id that is not a public job. */
const NOT_FOUND_ERROR = 'job not found';

export function downloadStatusData(state: JobState, reason?: string): DownloadStatus {
  const data: DownloadStatus = {
    jobId: state.id,
    status:
      state.status === 'running' || state.status === 'paused'
        ? 'processing'
        : state.status === 'cancelled'
          ? 'failed'
          : state.status,
    progress: wholePercent(state.progress.percent),
  };
  const videoInfo = reported(state, 'videoInfo', 'video_info');
  if (videoInfo !== undefined) data.videoInfo = videoInfo;
  const url = resultUrl(state, 'downloadUrl', 'download_url');
  if (url !== undefined) data.downloadUrl = url;
  if (state.status === 'failed' && state.error !== null) data.error = state.error.message;
  if (state.status === 'cancelled') data.error = reason ?? 'cancelled';
  const provider = reportedString(state, 'storageProvider', 'storage_provider');
  if (provider !== undefined) data.storageProvider = provider;
  const size = reportedNumber(state, 'fileSize', 'file_size');
  if (size !== undefined) data.fileSize = size;
  return data;
}

function notFoundStatus(jobId: string): DownloadStatus {
  return { jobId, status: 'failed', progress: 0, error: NOT_FOUND_ERROR };
}

function encode(d: Delivery): string | null {
  const { state, event } = d;
  if (UNSHOWN_KINDS.has(event.kind)) return null;
  if (event.kind === 'deleted') return JSON.stringify({ type: 'status', data: notFoundStatus(d.job) });
  return JSON.stringify({
    type: 'status',
    data: downloadStatusData(state, (event.data as { reason?: string }).reason),
  });
}

class DownloadStatusConnection extends DialectConnection {
  async start(): Promise<void> {
    if (!(await this.admitAnonymous())) {
      this.close(DialectClose.TRY_AGAIN_LATER, 'too many connections from this address');
      return;
    }
    const job = this.upgrade.params.job_id!;
    const snapshot = await this.subscribeWithSnapshot({ job }, async (): Promise<Snapshot | null> => {
      const state = await this.ctx.hub.getJob(job);
      if (state === null || !state.public) return null;
      return { frames: [{ type: 'status', data: downloadStatusData(state) }], seen: [[job, state.seq]] };
    });
    if (snapshot === null) {
      this.sendJson({ type: 'status', data: notFoundStatus(job) });
      this.closeAfterFlush(DialectClose.NORMAL, NOT_FOUND_ERROR);
    }
  }

  protected override onMessage(text: string): void {
    const trimmed = text.trim();
    if (trimmed === 'ping' || isJsonPing(trimmed)) this.sendBytes(PONG);
  }

  protected override delivered(d: Delivery): void {
    if (d.kind === 'deleted') this.closeAfterFlush(DialectClose.NORMAL, NOT_FOUND_ERROR);
  }
}

function isJsonPing(text: string): boolean {
  if (!text.startsWith('{')) return false;
  try {
    return (JSON.parse(text) as { type?: unknown }).type === 'ping';
  } catch {
    return false;
  }
}

export function downloadStatus({ ctx }: DialectEnv): Dialect {
  return {
    endpoint: { path: '/ws/download/:job_id', encode, connect: (init) => new DownloadStatusConnection(init) },
    routes: {
      '/api/status/:jobId': async function pollStatus(request) {
        const { jobId } = request.params;
        const state = await ctx.hub.getJob(jobId);
        if (state === null || !state.public) throw notFound(jobId);
        return downloadStatusData(state);
      },
    },
  };
}
