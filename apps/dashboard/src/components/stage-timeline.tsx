/**
 * A job's stage plan as a timeline: each stage done, current, paused, or where
 * the job failed or was cancelled (the stages after it not run), with how long
 * each took or has taken so far.
 */
import type { JobState } from '@headway/client';
import { formatDuration, formatTime, isActive } from '../format.js';

type StageMark = 'done' | 'current' | 'paused' | 'pending' | 'failed' | 'cancelled' | 'skipped';

const STAGE_SYMBOLS: Record<StageMark, string> = {
  done: '✓',
  current: '▶',
  paused: '⏸',
  pending: '○',
  failed: '✕',
  cancelled: '■',
  skipped: '–',
};

/**
 * How each stage stands. A job that ended other than by completing ended in
 * one stage (the one it was in, or the one its error names): that stage is
 * marked failed or cancelled, never done, and the stages after it were skipped.
 */
export function stageMarks(job: JobState): StageMark[] {
  const ended = job.status === 'failed' || job.status === 'cancelled';
  let stopIndex = -1;
  if (ended) {
    const named = job.status === 'failed' ? job.error?.stage : null;
    stopIndex = named ? job.stages.findIndex((s) => s.name === named) : -1;
    if (stopIndex < 0 && job.stage) stopIndex = job.stage.index;
  }
  return job.stages.map((stage, index) => {
    if (ended && stopIndex >= 0) {
      if (index === stopIndex) return job.status === 'failed' ? 'failed' : 'cancelled';
      if (index > stopIndex) return 'skipped';
      return 'done';
    }
    if (isActive(job) && job.stage?.index === index) return job.status === 'paused' ? 'paused' : 'current';
    if (stage.startedAt !== null) return 'done';
    return ended ? 'skipped' : 'pending';
  });
}

const STAGE_WORDS: Record<StageMark, string> = {
  done: 'done',
  current: '',
  paused: 'paused',
  pending: 'pending',
  failed: 'failed',
  cancelled: 'cancelled',
  skipped: 'not run',
};

export function StageTimeline({ job, now }: { job: JobState; now: number }) {
  if (job.stages.length === 0) return <p className="muted">This job reports no stages.</p>;
  const marks = stageMarks(job);
  return (
    <ol className="timeline">
      {job.stages.map((stage, index) => {
        const mark = marks[index]!;
        const start = stage.startedAt ? Date.parse(stage.startedAt) : null;
        // A stage open when the job ended ends with it.
        const endIso = stage.endedAt ?? (start !== null && !isActive(job) ? job.finishedAt : null);
        const end = endIso ? Date.parse(endIso) : null;
        // The browser's clock may run behind the hub's: a stage never lasts less than nothing.
        const duration =
          start === null
            ? ''
            : end !== null
              ? formatDuration(Math.max(0, end - start))
              : `${formatDuration(Math.max(0, now - start))} so far`;
        // The stage's own percent where it stood or stopped: "cancelled at 11%".
        const percent = job.stage?.index === index ? `${Math.floor(job.stage.percent)}%` : '';
        const words =
          mark === 'current'
            ? percent
            : (mark === 'cancelled' || mark === 'failed' || mark === 'paused') && percent
              ? `${STAGE_WORDS[mark]} at ${percent}`
              : STAGE_WORDS[mark];
        return (
          <li key={stage.name} className="timeline__stage" data-state={mark}>
            <span className="timeline__symbol" aria-hidden="true">
              {STAGE_SYMBOLS[mark]}
            </span>
            <span className="timeline__name">{stage.name}</span>
            <span className="timeline__state">{words}</span>
            <span className="timeline__weight">weight {stage.weight}</span>
            <span className="timeline__duration">{duration}</span>
            <span className="timeline__started">
              {stage.startedAt ? `started ${formatTime(stage.startedAt)}` : ''}
            </span>
          </li>
        );
      })}
    </ol>
  );
}
