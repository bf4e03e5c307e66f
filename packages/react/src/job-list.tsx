import type { JobState } from '@headway/client';
import type { ReactNode } from 'react';
import { type UseJobsOptions, useClient, useJobs } from './hooks.js';
import { ProgressBar } from './progress-bar.js';

export interface JobListProps extends UseJobsOptions {
  /** Shown when the list is empty (default "No jobs", or "Loading…" before the first connection). */
  empty?: ReactNode;
  /** Render one job yourself instead of its name and progress bar. */
  renderJob?: (job: JobState) => ReactNode;
  /** Make each name a button that selects its job. */
  onSelect?: (job: JobState) => void;
  /** Show Pause/Resume and Cancel buttons on unfinished jobs. */
  actions?: boolean;
  className?: string;
}

const ACTIVE = new Set(['queued', 'running', 'paused']);

/** The jobs of a scope, live: unfinished ones first, each newest first. */
export function JobList({ scope, status, empty, renderJob, onSelect, actions, className }: JobListProps) {
  const { jobs, connection } = useJobs({ scope, status });
  const client = useClient();
  if (jobs.length === 0) {
    return <p className="hw-jobs__empty">{empty ?? (connection === 'connected' ? 'No jobs' : 'Loading…')}</p>;
  }
  const ordered = [...jobs.filter((j) => ACTIVE.has(j.status)), ...jobs.filter((j) => !ACTIVE.has(j.status))];
  return (
    <ul className={className ? `hw-jobs ${className}` : 'hw-jobs'} style={{ listStyle: 'none', padding: 0 }}>
      {ordered.map((job) => (
        <li key={job.id} className="hw-jobs__item" data-status={job.status}>
          {renderJob ? (
            renderJob(job)
          ) : (
            <>
              <div className="hw-jobs__name">
                {onSelect ? (
                  <button type="button" onClick={() => onSelect(job)}>
                    {job.name || job.id}
                  </button>
                ) : (
                  job.name || job.id
                )}
              </div>
              <ProgressBar job={job} />
              {actions && ACTIVE.has(job.status) && (
                <div className="hw-jobs__actions">
                  <button
                    type="button"
                    aria-label={`${job.control.paused ? 'Resume' : 'Pause'} ${job.name || job.id}`}
                    onClick={() =>
                      client.control(job.id, job.control.paused ? 'resume' : 'pause').catch(() => {})
                    }
                  >
                    {job.control.paused ? 'Resume' : 'Pause'}
                  </button>
                  <button
                    type="button"
                    aria-label={`Cancel ${job.name || job.id}`}
                    disabled={job.control.cancelRequested}
                    onClick={() => client.control(job.id, 'cancel').catch(() => {})}
                  >
                    Cancel
                  </button>
                </div>
              )}
            </>
          )}
        </li>
      ))}
    </ul>
  );
}
