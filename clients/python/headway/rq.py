"""RQ and Headway: each run of an RQ job is a Headway job (id = the RQ job id).

Enqueue through ``enqueue`` (the Headway job exists, ``queued``, when it returns)
and run the worker class of this module::

    from headway.rq import current_job, enqueue

    def transcode(path):                       # in a module the worker imports
        job = current_job()
        job.stage("encode")
        ...

    enqueue(queue, transcode, "in.mp4", owner="alice", name="Transcode", stages=["encode"])

    # the worker:  rq worker -w headway.rq.HeadwayWorker <queue>

How a job's life maps (``HeadwaySimpleWorker`` the same, without a work horse):

- performed: ``running``; inside, ``current_job()`` reports, and each report is a
  checkpoint (``JobCancelled`` after a cancel; a pause is waited out), as are
  ``job.sleep()`` and ``job.check()``;
- finished: ``completed`` with the return value (JSON, at most 16 KiB) as result;
- failed with retries left (``Retry(max=n)``): ``failed``, code ``RQ_ATTEMPT_FAILED``,
  ``retryable: true``; the retry is a new job ``<id>:attempt-<n>`` with metadata
  ``retryOf`` and ``attempt``;
- failed for good: ``failed`` with the exception's ``code`` or class name; a work
  horse that died (killed, out of memory) fails it with ``WORKER_LOST``, retryable;
- ``JobCancelled`` out of the function (a cancel from the browser): ``cancelled``,
  and RQ does not retry it; a job cancelled while queued is skipped by the worker;
- stopped in RQ (``send_stop_job_command``): ``cancelled``;
- the worker killed outright (SIGKILL): the lease expires and a live worker's
  reaper fails the job with ``WORKER_LOST`` after ``HEADWAY_LEASE_TIMEOUT`` seconds
  (default 30; see ``headway.leases``). Leases live in the worker's Redis.

The worker reads ``HEADWAY_URL`` and ``HEADWAY_API_KEY``; ``HEADWAY_LEASE_TIMEOUT``
and ``HEADWAY_LEASE_KEY`` set the leases.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import uuid
from typing import Any, Dict, Optional

from rq import SimpleWorker, Worker
from rq.job import JobStatus

from ._tasks import Current, open_attempt, plain_spec, resolve_spec, result_of, spec_of_job
from ._tasks import attempt_id as _attempt_id
from .client import Headway, HeadwayError, Job, JobCancelled, JobDeleted
from .leases import DEFAULT_KEY, DEFAULT_TIMEOUT, Leases

__all__ = ["ATTEMPT_FAILED", "HeadwaySimpleWorker", "HeadwayWorker", "current_job", "enqueue", "headway_client"]

logger = logging.getLogger("headway")

#: Code of the error of an attempt that RQ retries.
ATTEMPT_FAILED = "RQ_ATTEMPT_FAILED"
_META = "headway"  # the job spec in the RQ job's meta
_ATTEMPT = "headway_attempt"  # the attempt number in the RQ job's meta

_current = Current()
_client_lock = threading.Lock()
_client: Optional[Headway] = None


def headway_client() -> Headway:
    """This process's Headway client (from ``HEADWAY_URL`` and ``HEADWAY_API_KEY``)."""
    global _client
    with _client_lock:
        if _client is None:
            _client = Headway()
        return _client


def current_job() -> Job:
    """The Headway job of the RQ job running in this thread (``RuntimeError`` outside one)."""
    return _current.require("headway.rq.HeadwayWorker")


def enqueue(
    queue: Any,
    f: Any,
    *args: Any,
    owner: str,
    name: Optional[str] = None,
    kind: Optional[str] = None,
    stages: Any = None,
    metadata: Optional[Dict[str, Any]] = None,
    public: Optional[bool] = None,
    hw: Optional[Headway] = None,
    **kwargs: Any,
) -> Any:
    """``queue.enqueue(f, *args, **kwargs)`` for the user ``owner``; returns the RQ job.
    Its Headway job (same id; ``name`` defaults to the function's) exists, ``queued``,
    when this returns. RQ's own options (``job_id``, ``retry``, ``job_timeout`` ...) pass through."""
    hw = hw or headway_client()
    job_id = kwargs.pop("job_id", None) or str(uuid.uuid4())
    label = name or getattr(f, "__name__", None) or str(f)
    given = {"owner": owner, "name": label, "kind": kind, "stages": stages, "metadata": metadata, "public": public}
    spec = plain_spec(resolve_spec([{k: v for k, v in given.items() if v is not None}], args, kwargs))
    meta = dict(kwargs.pop("meta", None) or {})
    meta[_META] = spec
    open_attempt(hw, job_id, 1, spec, {"queue": queue.name, "id": job_id, "attempt": 1}, key="rq")
    return queue.enqueue(f, *args, job_id=job_id, meta=meta, **kwargs)


class _Headway:
    """What the worker classes add to RQ's, as a mixin before ``Worker``."""

    _headway_leases: Optional[Leases] = None

    def _hw_leases(self) -> Leases:
        if self._headway_leases is None:
            self._headway_leases = Leases(
                self.connection,  # type: ignore[attr-defined]
                key=os.environ.get("HEADWAY_LEASE_KEY", DEFAULT_KEY),
                timeout=float(os.environ.get("HEADWAY_LEASE_TIMEOUT", DEFAULT_TIMEOUT)),
            )
        return self._headway_leases

    def work(self, *args: Any, **kwargs: Any) -> Any:
        self._hw_leases().start_reaper(headway_client())
        try:
            return super().work(*args, **kwargs)  # type: ignore[misc]
        finally:
            self._hw_leases().close()

    @staticmethod
    def _hw_attempt(job: Any) -> int:
        return int(job.meta.get(_ATTEMPT, 1))

    def _hw_open(self, job: Any, attempt: int) -> Optional[Job]:
        spec = resolve_spec([job.meta.get(_META)], job.args or (), job.kwargs or {})
        queue_meta = {"queue": job.origin, "id": job.id, "attempt": attempt}
        try:
            return open_attempt(headway_client(), job.id, attempt, spec, queue_meta, key="rq")
        except HeadwayError as err:
            if err.code != "HW_ERR_NOT_FOUND":
                logger.warning("headway: RQ job %s runs without its Headway job: %s", job.id, err)
            return None

    def perform_job(self, job: Any, queue: Any) -> bool:
        attempt = self._hw_attempt(job)
        hj = self._hw_open(job, attempt)
        if hj is not None and hj.ended and hj.cancelled:
            # Cancelled at the hub while it waited in the queue: not run at all.
            job.set_status(JobStatus.CANCELED)
            return False
        if hj is not None:
            hj.check_on_report = True
            hj.metadata(rq={"queue": job.origin, "id": job.id, "attempt": attempt})  # now running
            try:
                self._hw_leases().hold(hj.id)
            except Exception as err:  # noqa: BLE001 - Redis away: no lease
                logger.warning("headway: no lease on job %s: %s", hj.id, err)
        _current.set(hj)
        try:
            return super().perform_job(job, queue)  # type: ignore[misc]
        finally:
            _current.set(None)
            if hj is not None:
                try:
                    self._hw_leases().release(hj.id)
                except Exception:  # noqa: BLE001 - it expires; the reaper finds the job ended
                    pass

    def handle_job_success(self, job: Any, queue: Any, started_job_registry: Any) -> Any:
        outcome = super().handle_job_success(job, queue, started_job_registry)  # type: ignore[misc]
        hj = _current.get()
        if hj is not None:
            _end(hj, "complete", result_of(getattr(job, "_result", None)))
        return outcome

    def handle_job_failure(self, job: Any, queue: Any, started_job_registry: Any = None, exc_string: str = "") -> Any:
        error = sys.exc_info()[1]  # None when the work horse died: this is the worker then
        stopped = getattr(self, "_stopped_job_id", None) == job.id
        if isinstance(error, JobCancelled):
            job.retries_left = 0  # a cancel is an end, not a failure worth a retry
        attempt = self._hw_attempt(job)
        will_retry = bool(job.retries_left and job.retries_left > 0 and not stopped)
        if will_retry:
            job.meta[_ATTEMPT] = attempt + 1  # saved with the job as RQ requeues it
        outcome = super().handle_job_failure(job, queue, started_job_registry, exc_string)  # type: ignore[misc]
        hj = _current.get()
        if hj is None:
            try:
                hj = headway_client().job(_attempt_id(job.id, attempt))
            except HeadwayError:
                return outcome
        if stopped:
            _end(hj, "cancel", "stopped in RQ")
        elif isinstance(error, JobDeleted):
            pass
        elif isinstance(error, JobCancelled):
            _end(hj, "cancel", error.reason)
        elif error is None:
            _end(hj, "fail", exc_string.strip() or "the work horse died", code="WORKER_LOST", retryable=True)
            try:
                self._hw_leases().release(hj.id)  # held by the dead work horse
            except Exception:  # noqa: BLE001 - it expires; the reaper finds the job ended
                pass
        elif will_retry:
            _end(hj, "fail", error, code=ATTEMPT_FAILED, retryable=True)
        else:
            _end(hj, "fail", error)
        if will_retry and not stopped:
            try:
                open_attempt(
                    headway_client(),
                    job.id,
                    attempt + 1,
                    spec_of_job(hj),
                    {"queue": job.origin, "id": job.id, "attempt": attempt + 1},
                    key="rq",
                )
            except HeadwayError as err:
                logger.warning("headway: could not create the job of attempt %d of %s: %s", attempt + 1, job.id, err)
        return outcome


def _end(job: Job, how: str, *args: Any, **kwargs: Any) -> None:
    try:
        getattr(job, how)(*args, **kwargs)
    except HeadwayError as err:
        logger.warning("headway: could not report job %s %s: %s", job.id, how, err)


class HeadwayWorker(_Headway, Worker):
    """RQ's ``Worker`` (a work horse per job), reporting each job to Headway."""


class HeadwaySimpleWorker(_Headway, SimpleWorker):
    """RQ's ``SimpleWorker`` (jobs run in the worker's process), reporting each job to Headway."""
