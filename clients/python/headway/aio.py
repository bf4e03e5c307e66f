"""Headway for ``asyncio`` code: FastAPI handlers, ARQ workers, any coroutine.

The same API as ``headway.Headway`` and ``headway.Job``, with every call that
waits for the hub a coroutine::

    from headway.aio import AsyncHeadway

    async with AsyncHeadway() as hw:
        job = await hw.create_job("alice", name="Import", stages=["fetch", "load"])
        async with job:                        # completed, failed or cancelled, as the block ends
            job.stage("fetch")                 # reports only queue: plain calls
            for i, row in enumerate(rows, 1):
                await job.check()              # JobCancelled after a cancel; waits out a pause
                await save(row)
                job.progress(current=i, total=len(rows), unit="rows")

Nothing blocks the event loop: the reports (``progress``, ``stage``, ``log``,
``metadata``) queue an event and return (a report waits only when ``max_queue``
events are waiting already); the network is the client's own threads' work, as
in the threaded client this one drives (``hw.client``), with the same batching,
throttling, idempotency keys and retries; a call that waits for the hub runs in
the loop's default executor. ``check()`` and ``sleep()`` need no thread while
nothing is requested: a cancel or pause wakes them through the loop.
Standard library only.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Callable, Dict, List, Optional

from .client import Headway, HeadwayError, Job, JobCancelled, JobDeleted

# The errors too, so that async code needs one import.
__all__ = ["AsyncHeadway", "AsyncJob", "HeadwayError", "JobCancelled", "JobDeleted"]


async def _off_loop(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))


class AsyncJob:
    """A job's handle for coroutines; wraps a ``headway.Job`` (``.job``)."""

    def __init__(self, job: Job, loop: asyncio.AbstractEventLoop) -> None:
        self.job = job
        self._loop = loop
        self._changed = asyncio.Event()
        self._remove = job.on_control(self._on_control)

    def _on_control(self, control: Dict[str, bool], job: Job) -> None:
        # Called on one of the client's threads: hand the wake-up to the loop.
        try:
            self._loop.call_soon_threadsafe(self._changed.set)
        except RuntimeError:  # the loop is closed
            pass

    def __repr__(self) -> str:
        return f"<headway.aio.AsyncJob {self.id!r} status={self.status!r}>"

    # -- state -------------------------------------------------------------------

    id = property(lambda self: self.job.id)
    owner = property(lambda self: self.job.owner)
    name = property(lambda self: self.job.name)
    status = property(lambda self: self.job.status)
    seq = property(lambda self: self.job.seq)
    control = property(lambda self: self.job.control)
    cancelled = property(lambda self: self.job.cancelled)
    paused = property(lambda self: self.job.paused)
    ended = property(lambda self: self.job.ended)
    state = property(lambda self: self.job.state)
    last_error = property(lambda self: self.job.last_error)

    async def refresh(self) -> Dict[str, Any]:
        return await _off_loop(self.job.refresh)

    def on_control(self, listener: Callable[[Dict[str, bool], Job], None]) -> Callable[[], None]:
        """``listener(control, job)`` on each control change, called on a client thread."""
        return self.job.on_control(listener)

    # -- reports: they only queue ----------------------------------------------------------

    def progress(self, percent: Optional[float] = None, current: Optional[float] = None,
                 total: Optional[float] = None, unit: Optional[str] = None,
                 message: Optional[str] = None) -> None:
        self.job.progress(percent, current, total, unit, message)

    def stage(self, name: str, message: Optional[str] = None) -> None:
        self.job.stage(name, message)

    def log(self, message: str, level: str = "info") -> None:
        self.job.log(message, level)

    def metadata(self, values: Optional[Dict[str, Any]] = None, /, **fields: Any) -> None:
        self.job.metadata(values, **fields)

    # -- ends and waits: coroutines ---------------------------------------------------------

    async def complete(self, result: Any = None) -> None:
        await _off_loop(self.job.complete, result)
        self._remove()

    async def fail(self, error: Any, code: Optional[str] = None, retryable: Optional[bool] = None) -> None:
        await _off_loop(self.job.fail, error, code, retryable)
        self._remove()

    async def cancel(self, reason: Optional[str] = None) -> None:
        await _off_loop(self.job.cancel, reason)
        self._remove()

    async def flush(self, timeout: Optional[float] = None) -> None:
        await _off_loop(self.job.flush, timeout)

    async def check(self) -> None:
        """A safe point to stop or pause at, as ``Job.check``: returns at once while the
        job may run (no thread involved); raises ``JobCancelled`` after a cancel; while a
        pause is requested, reports ``paused`` and waits for the resume."""
        job = self.job
        if job.cancelled or job.ended:
            job.check()  # raises at once, or returns: nothing waits
            return
        if job.paused or job._cancel_sources:
            await _off_loop(job.check)

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep(seconds)`` as a checkpoint: raises ``JobCancelled`` as soon as a
        cancel arrives, and waits a pause out before it sleeps the rest."""
        deadline = self._loop.time() + max(0.0, float(seconds))
        while True:
            await self.check()
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                return
            self._changed.clear()
            if self.job.cancelled or self.job.paused:
                continue  # changed since the check: act on it now
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def child(self, name: Optional[str] = None, **options: Any) -> "AsyncJob":
        return AsyncJob(await _off_loop(self.job.child, name, **options), self._loop)

    async def __aenter__(self) -> "AsyncJob":
        return self

    async def __aexit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> bool:
        # The same rules as `with job:`, with the end reported off the loop.
        await _off_loop(self.job.__exit__, exc_type, exc, tb)
        self._remove()
        return False


class AsyncHeadway:
    """A process's connection to a hub, for coroutines. Takes the arguments of
    ``headway.Headway`` (``url``, ``api_key``, ``ssl_context`` and the options of
    ``headway.DEFAULTS``); ``client`` is the threaded client it drives."""

    def __init__(self, url: Optional[str] = None, api_key: Optional[str] = None, **options: Any) -> None:
        self.client = Headway(url, api_key, **options)

    @property
    def url(self) -> str:
        return self.client.url

    def __repr__(self) -> str:
        return f"<headway.aio.AsyncHeadway {self.url!r}>"

    async def create_job(self, owner: str, name: Optional[str] = None, **options: Any) -> AsyncJob:
        """As ``Headway.create_job``."""
        job = await _off_loop(self.client.create_job, owner, name, **options)
        return AsyncJob(job, asyncio.get_running_loop())

    async def job(self, id: str) -> AsyncJob:
        """As ``Headway.job``: a handle on an existing job."""
        return AsyncJob(await _off_loop(self.client.job, id), asyncio.get_running_loop())

    async def mint_token(self, user: str, jobs: Optional[List[str]] = None, ttl: Optional[float] = None) -> Dict[str, Any]:
        """As ``Headway.mint_token``: ``{"token", "expiresAt"}`` of a browser token for ``user``."""
        return await _off_loop(self.client.mint_token, user, jobs, ttl)

    async def request_control(self, job_id: str, action: str, reason: Optional[str] = None) -> Dict[str, Any]:
        """As ``Headway.request_control``."""
        return await _off_loop(self.client.request_control, job_id, action, reason)

    async def flush(self, timeout: Optional[float] = None) -> None:
        await _off_loop(self.client.flush, timeout)

    async def aclose(self, timeout: Optional[float] = None) -> None:
        """As ``Headway.close``: deliver what is queued, then stop the threads."""
        await _off_loop(self.client.close, timeout)

    def stats(self) -> Dict[str, int]:
        return self.client.stats()

    async def __aenter__(self) -> "AsyncHeadway":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

