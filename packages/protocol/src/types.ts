/**
 * Job state, events and protocol messages. Types only: no runtime code.
 */
import type { ErrorCode } from './codes.js';

/** Version of the native protocol, sent in `welcome`. */
export const PROTOCOL_VERSION = 1;

export type JobStatus = 'queued' | 'running' | 'paused' | 'completed' | 'failed' | 'cancelled';
export const TERMINAL_STATUSES: readonly JobStatus[] = ['completed', 'failed', 'cancelled'];

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface Progress {
  /** Overall percent 0–100, weighted across the stage plan when there is one. */
  percent: number;
  /** Units done, when the worker reports counts (bytes, videos …). */
  current?: number;
  /** Units in all. */
  total?: number;
  /** Name of the unit: `bytes`, `videos`, `frames` … */
  unit?: string;
}

export interface StageInfo {
  name: string;
  /** 0-based position in the stage plan (or in order of appearance without a plan). */
  index: number;
  /** Number of stages in the plan (or seen so far without a plan). */
  count: number;
  /** Percent within this stage, 0–100. */
  percent: number;
}

export interface StagePlanEntry {
  name: string;
  /** Relative weight of the stage in the overall percent; defaults to 1. */
  weight: number;
  /** ISO time the stage started, when it has. */
  startedAt: string | null;
  /** ISO time the stage ended (the next stage or a terminal event began). */
  endedAt: string | null;
}

export interface Eta {
  /** Estimated seconds remaining. */
  seconds: number;
  /** 0–1, grows with the number of samples and the steadiness of the rate. */
  confidence: number;
  /** Smoothed rate: `unit` per second when the job reports counts, else percent per second. */
  rate: number;
  /** Unit of `rate`: the progress unit, or `percent`. */
  unit: string;
}

/** Internal estimator state folded by the reducer; clients may ignore it. */
export interface EtaSample {
  /** Time (ms since epoch) of the last sample. */
  at: number;
  /** Overall percent at the last sample. */
  percent: number;
  /** Units done at the last sample, when counted. */
  current: number | null;
  /** Smoothed overall percent per second. */
  percentRate: number;
  /** Smoothed units per second, when counted. */
  unitRate: number | null;
  /** Smoothed relative deviation of the instantaneous rate from the smoothed rate. */
  jitter: number;
  /** Number of samples folded. */
  samples: number;
}

export interface JobError {
  code: string;
  message: string;
  retryable: boolean;
  /** The stage the job was in when it failed. */
  stage: string | null;
}

export interface Control {
  /** A cancel was requested and the job has not finished yet. */
  cancelRequested: boolean;
  /** A pause was requested (or the job is paused) and no resume since. */
  paused: boolean;
}

/** Roll-up of a batch parent's children. */
export interface ChildrenSummary {
  total: number;
  completed: number;
  failed: number;
  cancelled: number;
  /** Sum of the children's overall percents; the parent's percent is `percentSum / total`. */
  percentSum: number;
}

export interface JobState {
  id: string;
  owner: string;
  name: string;
  parent: string | null;
  status: JobStatus;
  progress: Progress;
  stage: StageInfo | null;
  stages: StagePlanEntry[];
  message: string | null;
  eta: Eta | null;
  metadata: JsonObject;
  result: Json | null;
  error: JobError | null;
  control: Control;
  children: ChildrenSummary | null;
  /** Watchable by anyone holding the job id (off by default). */
  public: boolean;
  createdAt: string;
  updatedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  /** Seq of the last event folded into this state. */
  seq: number;
  /** Estimator state for ETA; internal. */
  estimator: EtaSample | null;
}

export type EventKind =
  | 'created'
  | 'progress'
  | 'stage'
  | 'log'
  | 'metadata'
  | 'paused'
  | 'resumed'
  | 'completed'
  | 'failed'
  | 'cancelled'
  | 'cancel_requested'
  | 'pause_requested'
  | 'resume_requested'
  | 'children'
  | 'deleted';

export const TERMINAL_KINDS: readonly EventKind[] = ['completed', 'failed', 'cancelled', 'deleted'];

/** Event data by kind, as stored in the log and sent on the wire. */
export interface EventDataMap {
  created: {
    owner: string;
    name: string;
    parent: string | null;
    stages: { name: string; weight: number }[];
    metadata: JsonObject;
    public: boolean;
  };
  progress: { percent?: number; current?: number; total?: number; unit?: string; message?: string };
  stage: { name: string; message?: string };
  log: { message: string; level: LogLevel };
  metadata: { metadata: JsonObject };
  paused: { reason?: string };
  resumed: { reason?: string };
  completed: { result?: Json };
  failed: { error: { code: string; message: string; retryable: boolean; stage: string | null } };
  cancelled: { reason?: string; by?: string };
  cancel_requested: { reason?: string; by?: string };
  pause_requested: { reason?: string; by?: string };
  resume_requested: { reason?: string; by?: string };
  /** A change in a batch parent's roll-up of its children. */
  children: ChildrenSummary;
  /** The job was deleted; the last event a subscriber receives for it. Not stored. */
  deleted: Record<string, never>;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface JobEvent<K extends EventKind = EventKind> {
  job: string;
  seq: number;
  kind: K;
  data: EventDataMap[K];
  /** ISO time the hub accepted the event. */
  at: string;
}

// ---------------------------------------------------------------------------
// Native WebSocket protocol: client → server

export interface AuthMessage {
  type: 'auth';
  token: string;
}
export interface SubscribeJobMessage {
  type: 'subscribe';
  id: string;
  job: string;
  /** Last seq seen: the server replays what came after it. */
  since?: number;
}
export interface SubscribeScopeMessage {
  type: 'subscribe';
  id: string;
  scope: 'user' | 'all';
  /** Last seq seen per job. */
  since?: Record<string, number>;
}
export interface UnsubscribeMessage {
  type: 'unsubscribe';
  id: string;
}
export interface GetStateMessage {
  type: 'get_state';
  id: string;
  job: string;
}
export interface PingMessage {
  type: 'ping';
  ts?: number;
}
export interface ControlMessage {
  type: 'cancel' | 'pause' | 'resume';
  id: string;
  job: string;
  reason?: string;
}
export type ClientMessage =
  | AuthMessage
  | SubscribeJobMessage
  | SubscribeScopeMessage
  | UnsubscribeMessage
  | GetStateMessage
  | PingMessage
  | ControlMessage;

// ---------------------------------------------------------------------------
// Native WebSocket protocol: server → client

export interface Limits {
  /** Largest inbound frame, bytes. */
  maxMessageBytes: number;
  /** Subscriptions per connection. */
  maxSubscriptions: number;
  /** Client messages per second. */
  messagesPerSecond: number;
  /** Most events replayed on resume; beyond it `recovered` is false. */
  replayLimit: number;
}
export interface WelcomeMessage {
  type: 'welcome';
  version: number;
  heartbeatMs: number;
  limits: Limits;
  /** The authenticated user. */
  user: string;
}
export interface SubscribedMessage {
  type: 'subscribed';
  id: string;
  /** Current state of every job the subscription covers (for a scope: active and recent jobs). */
  jobs: JobState[];
  /** Events missed since `since`, in seq order per job. */
  events: JobEvent[];
  /** True when every missed event was replayed; false when the client must take `jobs` as the truth. */
  recovered: boolean;
}
export interface EventMessage {
  type: 'event';
  job: string;
  seq: number;
  kind: EventKind;
  data: EventDataMap[EventKind];
  at: string;
  /** The job's full state after this event. */
  state: JobState;
}
export interface StateMessage {
  type: 'state';
  id: string;
  job: JobState;
}
export interface AckMessage {
  type: 'ack';
  id: string;
  /** Job state after a control request. */
  job?: JobState;
}
export interface ErrorMessage {
  type: 'error';
  id?: string;
  code: ErrorCode;
  message: string;
}
export interface PongMessage {
  type: 'pong';
  ts?: number;
}
export type ServerMessage =
  | WelcomeMessage
  | SubscribedMessage
  | EventMessage
  | StateMessage
  | AckMessage
  | ErrorMessage
  | PongMessage;

// ---------------------------------------------------------------------------
// REST bodies

export interface StageInput {
  name: string;
  weight?: number;
}
export interface CreateJobInput {
  id?: string;
  owner: string;
  name?: string;
  parent?: string;
  stages?: StageInput[];
  metadata?: JsonObject;
  /** Watchable by anyone who holds the job id. */
  public?: boolean;
}

/** An event as a worker reports it. */
export type EventInput =
  | {
      kind: 'progress';
      key?: string;
      percent?: number;
      current?: number;
      total?: number;
      unit?: string;
      message?: string;
    }
  | { kind: 'stage'; key?: string; name: string; message?: string }
  | { kind: 'log'; key?: string; message: string; level?: LogLevel }
  | { kind: 'metadata'; key?: string; metadata: JsonObject }
  | { kind: 'completed'; key?: string; result?: Json }
  | { kind: 'failed'; key?: string; error: { code?: string; message: string; retryable?: boolean } }
  | { kind: 'cancelled'; key?: string; reason?: string }
  | { kind: 'paused'; key?: string; reason?: string }
  | { kind: 'resumed'; key?: string; reason?: string };

export type ReportableKind = EventInput['kind'];

export interface PublishResult {
  /** Seq of the job after the events were applied. */
  seq: number;
  control: Control;
}

export interface ErrorBody {
  error: { code: ErrorCode; message: string };
}
