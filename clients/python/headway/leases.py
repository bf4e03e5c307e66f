"""Leases: how the jobs of a worker that died without a word end.

A worker killed with SIGKILL (or by the kernel's OOM killer, or a power cut)
reports nothing more: its jobs would stay ``running`` forever. While a task
queue integration runs a job, it holds a lease on it in Redis (a sorted set
of job ids scored by expiry, renewed every ``timeout / 3`` seconds by a
daemon thread of the process that runs the job). A reaper, which every
worker's main process runs, fails the jobs whose lease expired with the
retryable error ``WORKER_LOST``. The timeout is the longest a dead worker's
job stays ``running``; it must exceed the longest pause of a live process
(a stop-the-world GC, a slow Redis) so that a live job is never reaped.

Times come from the Redis server's clock, so that hosts with skewed clocks
agree on what has expired. ``redis`` is any redis-py client (``decode_responses``
either way); this module imports nothing from it.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Dict, List, Optional

from .client import Headway, HeadwayError

__all__ = ["DEFAULT_KEY", "DEFAULT_TIMEOUT", "WORKER_LOST", "Leases"]

logger = logging.getLogger("headway")

#: Redis key of the sorted set of leases.
DEFAULT_KEY = "headway:leases"
#: Seconds a job's lease lasts without renewal: how long a dead worker's job stays running.
DEFAULT_TIMEOUT = 30.0
#: Code of the error of a job whose worker stopped renewing its lease.
WORKER_LOST = "WORKER_LOST"


class Leases:
    """Leases on running jobs in one Redis sorted set (``key``), lasting ``timeout`` seconds."""

    def __init__(self, redis: Any, *, key: str = DEFAULT_KEY, timeout: float = DEFAULT_TIMEOUT) -> None:
        if not timeout > 0:
            raise ValueError(f"the lease timeout must be positive, got {timeout!r}")
        self.redis = redis
        self.key = key
        self.timeout = float(timeout)
        self._reset()
        if hasattr(os, "register_at_fork"):
            # A forked child holds none of its parent's leases and runs none of its threads.
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._held: Dict[str, int] = {}  # job id -> holders in this process
        self._stop = threading.Event()
        self._renewer: Optional[threading.Thread] = None
        self._reaper: Optional[threading.Thread] = None

    def _now(self) -> float:
        seconds, micros = self.redis.time()
        return int(seconds) + int(micros) / 1e6

    def hold(self, job_id: str) -> None:
        """Take (or extend) the lease on a job this process runs; renewed until ``release``."""
        self.redis.zadd(self.key, {job_id: self._now() + self.timeout})
        with self._lock:
            self._held[job_id] = self._held.get(job_id, 0) + 1
            if self._renewer is None or not self._renewer.is_alive():
                self._renewer = threading.Thread(target=self._renew, name="headway-leases", daemon=True)
                self._renewer.start()

    def release(self, job_id: str) -> None:
        """The job ended here, or moved on: nobody should reap it."""
        with self._lock:
            count = self._held.pop(job_id, 0) - 1
            if count > 0:
                self._held[job_id] = count
        if count <= 0:
            self.redis.zrem(self.key, job_id)

    def held(self) -> List[str]:
        with self._lock:
            return list(self._held)

    def _renew(self) -> None:
        interval = self.timeout / 3
        while not self._stop.wait(interval):
            ids = self.held()
            if not ids:
                continue
            try:
                expiry = self._now() + self.timeout
                # xx: never bring back a lease that was released or reaped meanwhile.
                self.redis.zadd(self.key, {job_id: expiry for job_id in ids}, xx=True)
            except Exception as err:  # noqa: BLE001 - Redis away: try again next round
                logger.warning("headway: could not renew %d lease(s): %s", len(ids), err)

    def reap(self, hw: Headway) -> List[str]:
        """Fail every job whose lease expired (``WORKER_LOST``, retryable); returns their ids.
        Safe to run in many processes at once: each expired lease is taken by one."""
        expired = self.redis.zrangebyscore(self.key, "-inf", self._now())
        reaped = []
        for raw in expired:
            job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            if not self.redis.zrem(self.key, job_id):
                continue  # renewed, released or reaped by another process meanwhile
            try:
                job = hw.job(job_id)
                job.fail(
                    f"the worker running the job stopped renewing its lease for {self.timeout:g} s (killed?)",
                    code=WORKER_LOST,
                    retryable=True,
                )
            except HeadwayError as err:
                if err.code in ("HW_ERR_NOT_FOUND", "HW_ERR_JOB_DELETED", "HW_ERR_JOB_FINISHED"):
                    continue
                # Not failed: put the lease back, so that a later round tries again.
                self.redis.zadd(self.key, {job_id: 0})
                logger.warning("headway: could not fail job %s of a lost worker: %s", job_id, err)
                continue
            logger.warning("headway: job %s failed: its worker stopped renewing its lease", job_id)
            reaped.append(job_id)
        return reaped

    def start_reaper(self, hw: Headway, interval: Optional[float] = None) -> None:
        """Run ``reap`` every ``interval`` seconds (default ``timeout / 2``) in a daemon thread."""
        with self._lock:
            if self._reaper is not None and self._reaper.is_alive():
                return
            every = self.timeout / 2 if interval is None else interval

            def run() -> None:
                while not self._stop.wait(every):
                    try:
                        self.reap(hw)
                    except Exception as err:  # noqa: BLE001 - Redis or hub away: next round
                        logger.warning("headway: lease reaper: %s", err)

            self._reaper = threading.Thread(target=run, name="headway-reaper", daemon=True)
            self._reaper.start()

    def close(self) -> None:
        """Stop renewing and reaping (held leases then expire by themselves)."""
        self._stop.set()
        for thread in (self._renewer, self._reaper):
            if thread is not None and thread is not threading.current_thread():
                thread.join(5)
