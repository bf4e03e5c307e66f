"""Celery and Headway: each run of a task is a Headway job.

One call wires an app (in the module that defines it, so that workers and the
code that enqueues both run it)::

    from celery import Celery
    from headway.celery import current_job, install

    app = Celery("media", broker="redis://127.0.0.1:6379/0")
    headway = install(app)

    @app.task(headway={"name": "Transcode", "kind": "transcode", "stages": ["probe", "encode"]})
    def transcode(path):
        job = current_job()
        job.stage("probe")
        ...

    headway.apply_async(transcode, ("in.mp4",), owner="alice")  # returns the AsyncResult

How a task's life maps to its job (the job id is the Celery task id):

- enqueued (through ``apply_async`` here, or any publish of a task whose options
  name an owner): the job is created, ``queued``, metadata ``celery: {task, id,
  attempt}``; a task published without an owner gets a job when it starts, if
  its options or the install defaults name one;
- started: the job is ``running``; inside the task, ``current_job()`` reports
  progress, stages and logs (each report also a checkpoint: it raises
  ``JobCancelled`` after a cancel and waits out a pause; ``job.sleep()`` and
  ``job.check()`` are checkpoints for code that waits or computes);
- succeeded: ``completed``, with the return value as the result when it is JSON
  and at most 16 KiB;
- retried (``self.retry()``, ``autoretry_for``): the attempt ends ``failed`` with
  code ``CELERY_ATTEMPT_FAILED`` and ``retryable: true``; the next attempt is a
  new job ``<task id>:attempt-<n>`` with metadata ``retryOf`` and ``attempt``;
- failed: ``failed`` with the exception's ``code`` attribute or class name and
  ``retryable: false`` (its ``retryable`` attribute when it has one); a pool
  process that died (``WorkerLostError``) fails it with ``WORKER_LOST``,
  ``retryable: true``;
- ``JobCancelled`` out of the task (a cancel from the browser): ``cancelled``
  (a retry of it by ``autoretry_for`` is revoked);
- revoked in Celery: ``cancelled`` — a queued task at once; a running one when
  terminated (``revoke(id, terminate=True)``), or, in a ``threads`` or ``solo``
  pool, at its next checkpoint;
- the worker killed outright (SIGKILL, OOM): the job's lease in Redis expires
  and a live worker's reaper fails it with ``WORKER_LOST``, ``retryable: true``,
  after ``lease_timeout`` seconds (see ``headway.leases``).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from celery import signals
from celery.exceptions import WorkerLostError

from ._tasks import Current, Spec, open_attempt, plain_spec, resolve_spec, result_of, spec_of_job
from ._tasks import attempt_id as _attempt_id
from .client import Headway, HeadwayError, Job, JobCancelled, JobDeleted
from .leases import DEFAULT_KEY, DEFAULT_TIMEOUT, Leases

__all__ = ["ATTEMPT_FAILED", "HEADER", "CeleryIntegration", "current_job", "install"]

logger = logging.getLogger("headway")

#: Code of the error of an attempt that Celery retries.
ATTEMPT_FAILED = "CELERY_ATTEMPT_FAILED"
#: The message header that carries the caller's job spec.
HEADER = "headway"
#: Most attempts looked up to find a task's newest one, from a process that did not run it.
_MAX_ATTEMPT_LOOKUPS = 100

_current = Current()


def current_job() -> Job:
    """The Headway job of the Celery task running in this thread (``RuntimeError`` outside one)."""
    return _current.require("a worker of a Celery app wired with headway.celery.install")


class CeleryIntegration:
    """What ``install`` returns: the app's Headway client and leases, and a way to
    enqueue a task for a user."""

    def __init__(
        self,
        app: Any,
        hw: Optional[Headway],
        defaults: Mapping[str, Any],
        lease_timeout: float,
        redis_url: Optional[str],
        lease_key: str,
        client_options: Mapping[str, Any],
    ) -> None:
        self.app = app
        self._hw = hw
        self._client_options = dict(client_options)
        self._defaults = dict(defaults)
        self._lock = threading.Lock()
        self._redis_url = redis_url
        self._lease_timeout = lease_timeout
        self._lease_key = lease_key
        self._leases: Optional[Leases] = None
        # (task id, attempt) -> the job of an attempt running in this process. A thread
        # pool may start a task's retry before the attempt that retried it has ended.
        self._running: Dict[Tuple[str, int], Job] = {}

    # -- public ---------------------------------------------------------------------

    @property
    def hw(self) -> Headway:
        """The Headway client of this process (created on first use, from the environment)."""
        with self._lock:
            if self._hw is None:
                self._hw = Headway(**self._client_options)
            return self._hw

    @property
    def leases(self) -> Optional[Leases]:
        """The leases on running jobs, or None when there is no Redis to keep them in."""
        with self._lock:
            if self._leases is None and self._redis_url:
                import redis  # a Celery app with a Redis broker has it

                self._leases = Leases(
                    redis.Redis.from_url(self._redis_url), key=self._lease_key, timeout=self._lease_timeout
                )
            return self._leases

    def apply_async(
        self,
        task: Any,
        args: Sequence[Any] = (),
        kwargs: Optional[Mapping[str, Any]] = None,
        *,
        owner: Optional[str] = None,
        name: Optional[str] = None,
        kind: Optional[str] = None,
        stages: Any = None,
        metadata: Optional[Dict[str, Any]] = None,
        public: Optional[bool] = None,
        **options: Any,
    ) -> Any:
        """``task.apply_async(args, kwargs, **options)`` for the user ``owner``: the job
        (id = task id) exists, ``queued``, when this returns. ``name``, ``kind``,
        ``stages``, ``metadata`` and ``public`` override the task's ``headway`` options."""
        given = {"owner": owner, "name": name, "kind": kind, "stages": stages, "metadata": metadata, "public": public}
        caller = {k: v for k, v in given.items() if v is not None}
        headers = dict(options.pop("headers", None) or {})
        headers[HEADER] = caller
        return task.apply_async(args, kwargs, headers=headers, **options)

    def job_spec(self, task: Any, args: Sequence[Any], kwargs: Mapping[str, Any], caller: Any = None) -> Spec:
        """The job spec of a run: install defaults, then the task's ``headway`` option, then the caller's."""
        own = getattr(task, "headway", None) if task is not None else None
        return resolve_spec([self._defaults, own, caller if isinstance(caller, dict) else None], args, kwargs)

    def close(self) -> None:
        """Close this process's client and stop its lease threads."""
        with self._lock:
            hw, self._hw = self._hw, None
            leases, self._leases = self._leases, None
        if leases is not None:
            leases.close()
        if hw is not None:
            hw.close()

    # -- signal handlers ---------------------------------------------------------------

    def _task(self, name: str) -> Any:
        return self.app.tasks.get(name)

    def _meta(self, task_name: str, task_id: str, attempt: int) -> Dict[str, Any]:
        return {"task": task_name, "id": task_id, "attempt": attempt}

    def _on_publish(self, sender: Any = None, body: Any = None, headers: Any = None, **_: Any) -> None:
        """Create the job of a task as it is enqueued (and of a retry as it is re-enqueued)."""
        if not headers or "id" not in headers:
            return
        task_id, name = headers["id"], headers.get("task") or sender
        attempt = int(headers.get("retries") or 0) + 1
        previous = self._running.get((task_id, attempt - 1))
        if attempt > 1 and previous is not None:
            # A retry published by the attempt that runs here: the same owner, name and plan.
            spec = spec_of_job(previous)
        else:
            args, kwargs = (body[0], body[1]) if isinstance(body, (list, tuple)) and len(body) >= 2 else ((), {})
            spec = self.job_spec(self._task(name), args, kwargs, headers.get(HEADER))
            if headers.get(HEADER) is not None:
                headers[HEADER] = plain_spec(spec)  # resolved once, where the arguments are known
        if not spec.get("owner"):
            return
        try:
            open_attempt(self.hw, task_id, attempt, spec, self._meta(name, task_id, attempt), key="celery")
        except HeadwayError as err:
            # The task is enqueued regardless; its job is created when it starts.
            logger.warning("headway: could not create the job of task %s: %s", task_id, err)

    def _on_prerun(self, task_id: str = "", task: Any = None, args: Any = (), kwargs: Any = None, **_: Any) -> None:
        request = task.request
        attempt = _attempt_of(request)
        caller = getattr(request, HEADER, None)
        if caller is None and isinstance(getattr(request, "headers", None), dict):
            caller = request.headers.get(HEADER)
        try:
            spec = self.job_spec(task, args or (), kwargs or {}, caller)
            job = open_attempt(self.hw, task_id, attempt, spec, self._meta(task.name, task_id, attempt), key="celery")
        except HeadwayError as err:
            if err.code != "HW_ERR_NOT_FOUND":
                logger.warning("headway: task %s runs without its Headway job: %s", task_id, err)
            _current.set(None)
            return
        job.check_on_report = True
        revoked = _revoked_ids()
        if revoked is not None:
            job.add_cancel_source(lambda: "revoked in Celery" if task_id in revoked else None)
        self._running[(task_id, attempt)] = job
        _current.set(job)
        if not job.ended:
            # The first report moves the job from queued to running.
            job.metadata(celery=self._meta(task.name, task_id, attempt))
            leases = self.leases
            if leases is not None:
                try:
                    leases.hold(job.id)
                except Exception as err:  # noqa: BLE001 - Redis away: the job runs without a lease
                    logger.warning("headway: no lease on job %s: %s", job.id, err)

    def _finish(self, task_id: str, attempt: Optional[int] = None) -> Optional[Job]:
        """Forget the attempt (the newest one running here when not known) and hand back its job."""
        if attempt is None:
            attempts = [a for (t, a) in self._running if t == task_id]
            attempt = max(attempts) if attempts else 0
        job = self._running.pop((task_id, attempt), None)
        if _current.get() is job:
            _current.set(None)
        leases = self._leases
        if job is not None and leases is not None:
            try:
                leases.release(job.id)
            except Exception as err:  # noqa: BLE001 - the lease expires; the reaper finds the job ended
                logger.debug("headway: lease of job %s not released: %s", job.id, err)
        return job

    def _end(self, job: Job, how: str, *args: Any, **kwargs: Any) -> None:
        try:
            getattr(job, how)(*args, **kwargs)
        except HeadwayError as err:
            logger.warning("headway: could not report job %s %s: %s", job.id, how, err)

    def _on_success(self, sender: Any = None, result: Any = None, **_: Any) -> None:
        job = self._finish(sender.request.id, _attempt_of(sender.request))
        if job is not None:
            self._end(job, "complete", result_of(result))

    def _on_retry(self, sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
        job = self._finish(request.id, _attempt_of(request))
        if isinstance(reason, JobCancelled):
            # `autoretry_for=(Exception,)` retries a cancel too: the retry is revoked
            # (its job, queued, is cancelled when a worker receives it).
            self.app.control.revoke(request.id)
            if job is not None and not isinstance(reason, JobDeleted):
                self._end(job, "cancel", reason.reason)
            return
        if job is not None:
            self._end(job, "fail", reason if reason is not None else "retried", code=ATTEMPT_FAILED, retryable=True)

    def _on_failure(self, sender: Any = None, task_id: str = "", exception: Any = None, **_: Any) -> None:
        request = getattr(sender, "request", None)
        same = request is not None and getattr(request, "id", None) == task_id
        job = self._finish(task_id, _attempt_of(request) if same else None)
        if job is None and isinstance(exception, WorkerLostError):
            # The pool process running it died; this is the worker's main process.
            job = self._latest_attempt(task_id)
            if job is not None:
                self._end(job, "fail", exception, code="WORKER_LOST", retryable=True)
            return
        if job is None or isinstance(exception, JobDeleted):
            return
        if isinstance(exception, JobCancelled):
            self._end(job, "cancel", exception.reason)
        else:
            self._end(job, "fail", exception)

    def _on_revoked(self, sender: Any = None, request: Any = None, terminated: bool = False, **_: Any) -> None:
        task_id = getattr(request, "id", None) or getattr(request, "task_id", None)
        if not task_id:
            return
        job = self._finish(task_id) or self._latest_attempt(task_id)
        if job is None or job.ended:
            return
        try:
            if terminated:
                job.cancel("revoked in Celery")  # its process was stopped: nothing else will
            else:
                # A queued job is cancelled at once; a running one at its next checkpoint.
                self.hw.request_control(job.id, "cancel", "revoked in Celery")
        except HeadwayError as err:
            if err.code not in ("HW_ERR_JOB_FINISHED", "HW_ERR_NOT_FOUND", "HW_ERR_JOB_DELETED"):
                logger.warning("headway: could not cancel job %s of a revoked task: %s", job.id, err)

    def _latest_attempt(self, task_id: str) -> Optional[Job]:
        """The job of a task's newest attempt, read from the hub (for a process that did not run it)."""
        latest = None
        for attempt in range(1, _MAX_ATTEMPT_LOOKUPS + 1):
            try:
                latest = self.hw.job(_attempt_id(task_id, attempt))
            except HeadwayError:
                break
            if not latest.ended:
                break
        return latest

    def _on_worker_ready(self, **_: Any) -> None:
        leases = self.leases
        if leases is not None:
            leases.start_reaper(self.hw)

    def _on_worker_shutdown(self, **_: Any) -> None:
        self.close()


def _attempt_of(request: Any) -> int:
    """The attempt a task request runs: 1, then 2 for its first retry, and so on."""
    return int(getattr(request, "retries", 0) or 0) + 1


def _revoked_ids() -> Any:
    """The worker's set of revoked task ids, where the task runs in the process that
    receives revokes (``threads`` and ``solo`` pools); None in a pool's child process."""
    try:
        from celery.worker import state
    except ImportError:  # pragma: no cover
        return None
    import multiprocessing

    if multiprocessing.parent_process() is not None:
        return None
    return state.revoked


def install(
    app: Any,
    hw: Optional[Headway] = None,
    *,
    owner: Any = None,
    name: Any = None,
    kind: Any = None,
    stages: Any = None,
    metadata: Any = None,
    lease_timeout: float = DEFAULT_TIMEOUT,
    redis_url: Optional[str] = None,
    lease_key: str = DEFAULT_KEY,
    **client_options: Any,
) -> CeleryIntegration:
    """Wire the Celery ``app`` to Headway; returns the integration.

    ``owner``, ``name``, ``kind``, ``stages`` and ``metadata`` are defaults for every
    task's job (a task's ``headway={...}`` option and the caller's arguments to
    ``apply_async`` win); each may be a function of ``(args, kwargs)``. ``hw`` is the
    Headway client to report through (default: one per process, from
    ``HEADWAY_URL`` and ``HEADWAY_API_KEY``, with ``client_options``).

    Leases (how a killed worker's jobs end, see ``headway.leases``) live in Redis at
    ``redis_url``, by default the broker's URL when it is a Redis one; without Redis
    there are no leases. ``lease_timeout`` (seconds, default 30) is how long a dead
    worker's job stays ``running``."""
    if redis_url is None:
        broker = str(app.conf.broker_url or "")
        redis_url = broker if broker.startswith(("redis://", "rediss://", "unix://")) else None
    integration = CeleryIntegration(
        app,
        hw,
        {"owner": owner, "name": name, "kind": kind, "stages": stages, "metadata": metadata},
        lease_timeout,
        redis_url,
        lease_key,
        client_options,
    )
    integration._defaults = {k: v for k, v in integration._defaults.items() if v is not None}
    # weak=False: the integration lives as long as the app, not as long as a reference to it.
    signals.before_task_publish.connect(integration._on_publish, weak=False)
    signals.task_prerun.connect(integration._on_prerun, weak=False)
    signals.task_success.connect(integration._on_success, weak=False)
    signals.task_retry.connect(integration._on_retry, weak=False)
    signals.task_failure.connect(integration._on_failure, weak=False)
    signals.task_revoked.connect(integration._on_revoked, weak=False)
    signals.worker_ready.connect(integration._on_worker_ready, weak=False)
    signals.worker_shutdown.connect(integration._on_worker_shutdown, weak=False)
    return integration
