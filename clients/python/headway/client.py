"""The core of the Headway client for Python workers: report the progress,
stages, logs and outcome of long-running jobs to a Headway hub, and honour
cancel and pause requests. Standard library only, Python 3.9 or newer::

    from headway import Headway

    hw = Headway()  # HEADWAY_URL and HEADWAY_API_KEY from the environment
    with hw.create_job("alice", name="Transcode", stages=["download", "transcode"]) as job:
        job.stage("download")
        for done in range(0, 101, 5):
            job.check()  # raises JobCancelled after a cancel; blocks while paused
            job.progress(current=done, total=100, unit="MB")
        job.stage("transcode")
        ...
    hw.close()

How reports travel: each report becomes an event with an idempotency key in one
bounded queue per client. A background thread posts the queue to
``POST /v1/events`` in batches (events of many jobs in one request, over one
keep-alive connection) and retries network errors, 5xx and 429 with capped
exponential backoff, honouring ``Retry-After``; the keys make a retried request
apply once. Progress is throttled per job (one event per ``progress_interval``
at most, and only on a meaningful change); every other event is sent at once,
in the order it was reported, after the newest pending progress of its job, so
the last progress before a stage change or the end is never lost.
``complete``, ``fail`` and ``cancel`` return once the hub has stored the end.

How control arrives: a daemon thread per active job long-polls
``GET /v1/jobs/:id?since=&wait=``, so a cancel or pause requested in a browser
reaches the worker within a second even while it is busy and not reporting; the
answers to reports carry the control state too.

This mirrors the Node SDK (``@headway/worker``): the same defaults, error codes
(``HW_WORKER_*`` for the client's own errors, the hub's ``HW_ERR_*`` otherwise)
and throttling rules.
"""

from __future__ import annotations

import atexit
import collections
import email.utils
import http.client
import json
import logging
import math
import os
import random
import socket
import ssl
import threading
import time
import urllib.parse
import uuid
import weakref
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Tuple

#: The package version: the version of the hub's protocol package (@headway/protocol) it speaks.
__version__ = "0.1.0"
#: The protocol version of the hub's WebSocket ``welcome`` message.
PROTOCOL_VERSION = 1

__all__ = [
    "DEFAULTS",
    "ConfigError",
    "Headway",
    "HeadwayError",
    "InvalidArgument",
    "Job",
    "JobCancelled",
    "JobDeleted",
    "PROTOCOL_VERSION",
    "__version__",
]

logger = logging.getLogger("headway")

# ---------------------------------------------------------------------------
# Defaults, in one place: each is a keyword argument of `Headway(...)`.

DEFAULTS: Dict[str, Any] = {
    # Seconds between two progress events of one job: at most 4 a second.
    "progress_interval": 0.25,
    # Percentage points: a report whose percent moved less than this since the last
    # one sent, with the same message, unit and total, is not sent.
    "progress_min_delta": 0.1,
    # Attempts of a request the caller waits for (create_job, job, refresh) before
    # it raises HW_WORKER_UNREACHABLE.
    "max_attempts": 8,
    # Seconds a queued event is retried before it is given up (HW_WORKER_UNREACHABLE);
    # None: until it is delivered, or until close() gives up on it.
    "retry_timeout": None,
    # Seconds: the first retry waits up to `min_backoff`, each next one twice as long,
    # up to `max_backoff` (full jitter); a longer Retry-After from the hub wins (up to 60 s).
    "min_backoff": 0.2,
    "max_backoff": 10.0,
    # Seconds one request may take (a long-poll adds its wait).
    "request_timeout": 30.0,
    # Seconds a control long-poll waits at the hub (which caps it at 60 s).
    "control_wait": 25.0,
    # Long-poll the control state of each active job from a background thread.
    "watch_control": True,
    # Most jobs watched at once (one thread each); the others learn control from replies.
    "max_watched_jobs": 100,
    # Most events waiting to be sent. When full, log events are dropped (counted in
    # `stats()["dropped"]`), progress waits as pending, other reports wait for room.
    "max_queue": 10_000,
    # Most events, and most bytes of events, in one request (the hub takes 1000 and 1 MiB).
    "max_batch_events": 500,
    "max_batch_bytes": 256 * 1024,
    # Seconds close() waits for queued events before it drops them (HW_WORKER_DROPPED).
    "close_timeout": 10.0,
}

# Limits of the protocol (packages/protocol/src/schemas.ts).
_MAX_MESSAGE = 4096
_MAX_REASON = 1024
_MAX_NAME = 256
_MAX_STAGE_NAME = 128
_MAX_UNIT = 32
_MAX_CODE = 128
_LOG_LEVELS = ("debug", "info", "warn", "error")
_TERMINAL = ("completed", "failed", "cancelled")  # event kinds and statuses alike
_JOB_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-")
_MAX_RETRY_AFTER = 60.0  # seconds

# Codes of the hub that a retry may cure, in the result of one job of a batch.
_RETRYABLE_CODES = frozenset(
    {"HW_ERR_STORE_UNAVAILABLE", "HW_ERR_SHUTTING_DOWN", "HW_ERR_INTERNAL", "HW_ERR_RATE_LIMITED"}
)
# Codes that refuse one event. The hub applies a job's events all-or-nothing, so
# the other events of that job in the request are sent again one by one.
_SPLIT_CODES = frozenset(
    {"HW_ERR_INVALID_VALUE", "HW_ERR_INVALID_TRANSITION", "HW_ERR_INVALID_MESSAGE", "HW_ERR_PAYLOAD_TOO_LARGE"}
)
# Codes after which a job takes no more events.
_GONE_CODES = {
    "HW_ERR_JOB_FINISHED": "finished",
    "HW_ERR_JOB_DELETED": "deleted",
    "HW_ERR_NOT_FOUND": "deleted",
}


# ---------------------------------------------------------------------------
# Errors


class HeadwayError(Exception):
    """An error with a stable ``code``: the hub's ``HW_ERR_*`` code, or one of the
    client's own: ``HW_WORKER_INVALID_OPTION``, ``HW_WORKER_CLOSED``,
    ``HW_WORKER_DROPPED``, ``HW_WORKER_UNREACHABLE``, ``HW_WORKER_BAD_RESPONSE``.
    Act on ``code``; the message is for people."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: Optional[int] = None,
        retry_after: Optional[float] = None,
        job: Optional[str] = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        #: HTTP status of the hub's answer; None when the error did not come from one.
        self.status = status
        #: Seconds the hub asked to wait before a retry (503, 429).
        self.retry_after = retry_after
        #: The job the error concerns, when it concerns one.
        self.job = job


class ConfigError(HeadwayError, ValueError):
    """A missing or invalid option (``HW_WORKER_INVALID_OPTION``). ``option`` names
    the argument (``url``, ``api_key``, ``max_queue`` ...) and ``setting`` the
    environment variable it defaults to, if any (``HEADWAY_URL``, ``HEADWAY_API_KEY``)."""

    def __init__(self, option: str, message: str, setting: Optional[str] = None) -> None:
        super().__init__("HW_WORKER_INVALID_OPTION", message)
        self.option = option
        self.setting = setting


class InvalidArgument(HeadwayError, ValueError):
    """A report the hub would refuse, caught where it is made (``HW_ERR_INVALID_VALUE``
    or ``HW_ERR_INVALID_MESSAGE``); nothing was queued."""


class JobCancelled(Exception):
    """Raised by ``Job.check()`` once a cancel was requested: stop working. Leaving a
    ``with job:`` block with it reports the job ``cancelled``. Catch it to treat a
    cancel as a normal end."""

    #: Stable code, as on the Node SDK's abort error.
    code = "HW_WORKER_CANCELLED"

    def __init__(self, job_id: str, reason: Optional[str] = None) -> None:
        super().__init__(f"job {job_id!r} was cancelled" + (f": {reason}" if reason else ""))
        self.job_id = job_id
        self.reason = reason


class JobDeleted(JobCancelled):
    """Raised by ``Job.check()`` when the job was deleted at the hub: stop working;
    nothing more can be reported for it."""

    code = "HW_ERR_JOB_DELETED"

    def __init__(self, job_id: str) -> None:
        Exception.__init__(self, f"job {job_id!r} was deleted")
        self.job_id = job_id
        self.reason = None


def _closed_error() -> HeadwayError:
    return HeadwayError("HW_WORKER_CLOSED", "the Headway client is closed")


# ---------------------------------------------------------------------------
# HTTP

_NETWORK_ERRORS = (OSError, http.client.HTTPException)
# A keep-alive connection the server closed while it was idle fails like this when
# reused: such a request is sent again at once on a fresh connection.
_STALE_ERRORS = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class _Target:
    """The hub's address, parsed once."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("url", f"the hub URL must be http:// or https://, got {url!r}", "HEADWAY_URL")
        try:
            port = parts.port
        except ValueError as err:
            raise ConfigError("url", f"bad port in the hub URL {url!r}", "HEADWAY_URL") from err
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")


class _Connection:
    """One keep-alive HTTP connection, used by one thread at a time. Another thread
    may ``interrupt()`` it, to end a long-poll in flight on close."""

    def __init__(self, target: _Target, ssl_context: Optional[ssl.SSLContext]) -> None:
        self._target = target
        self._ssl = ssl_context
        self._conn: Optional[http.client.HTTPConnection] = None
        self._lock = threading.Lock()
        self._interrupted = False
        #: True when the last request reused a connection opened for an earlier one.
        self.reused = False

    def request(
        self, method: str, path: str, body: Optional[bytes], headers: Dict[str, str], timeout: float
    ) -> Tuple[int, http.client.HTTPMessage, bytes]:
        with self._lock:
            if self._interrupted:
                raise ConnectionAbortedError("the connection was interrupted")
            if self._conn is None:
                t = self._target
                if t.https:
                    self._conn = http.client.HTTPSConnection(t.host, t.port, timeout=timeout, context=self._ssl)
                else:
                    self._conn = http.client.HTTPConnection(t.host, t.port, timeout=timeout)
                self.reused = False
            else:
                self.reused = True
            conn = self._conn
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        try:
            conn.request(method, self._target.prefix + path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except BaseException:
            self.close()
            raise
        if response.will_close:
            self.close()
        return response.status, response.headers, data

    def interrupt(self) -> None:
        """Make the request in flight, and any later one, fail at once."""
        with self._lock:
            self._interrupted = True
            sock = self._conn.sock if self._conn is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _retry_after(headers: http.client.HTTPMessage) -> Optional[float]:
    """Seconds of a ``Retry-After`` header: delta-seconds or an HTTP date."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _parse_json(data: bytes) -> Any:
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def _error_from(status: int, data: bytes, headers: http.client.HTTPMessage) -> HeadwayError:
    """The ``HeadwayError`` of an answer that is not a success."""
    body = _parse_json(data)
    detail = body.get("error") if isinstance(body, dict) else None
    retry_after = _retry_after(headers)
    if isinstance(detail, dict) and isinstance(detail.get("code"), str):
        message = detail.get("message")
        return HeadwayError(
            detail["code"], message if isinstance(message, str) else "", status=status, retry_after=retry_after
        )
    text = data[:200].decode("utf-8", "replace")
    return HeadwayError("HW_WORKER_BAD_RESPONSE", f"HTTP {status}: {text}", status=status, retry_after=retry_after)


def _retryable_status(status: int) -> bool:
    return status >= 500 or status == 429


def _job_path(job_id: str) -> str:
    return "/v1/jobs/" + urllib.parse.quote(job_id, safe="")


# ---------------------------------------------------------------------------
# Validation, mirroring the hub's, so that a mistake raises where it is made


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidArgument("HW_ERR_INVALID_VALUE", f"{name} must be a finite number, got {value!r}")
    return value


def _text(name: str, value: Any, limit: int, *, truncate: bool = False, required: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidArgument("HW_ERR_INVALID_MESSAGE", f"{name} must be a string, got {type(value).__name__}")
    if required and not value:
        raise InvalidArgument("HW_ERR_INVALID_MESSAGE", f"{name} must not be empty")
    if len(value) > limit:
        if not truncate:
            raise InvalidArgument("HW_ERR_INVALID_MESSAGE", f"{name} is longer than {limit} characters")
        # A long log line or error message is cut rather than refused: losing its
        # tail is better than failing the worker that reported it.
        value = value[: limit - 1] + "\u2026"
    return value


def _check_job_id(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 128 or not set(value) <= _JOB_ID_CHARS:
        raise InvalidArgument(
            "HW_ERR_INVALID_MESSAGE", f"a job id is 1-128 letters, digits and ._:- characters, got {value!r}"
        )
    return value


def _dumps(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise InvalidArgument("HW_ERR_INVALID_VALUE", f"not JSON-serializable: {err}") from err


def _stages(stages: Any) -> List[Dict[str, Any]]:
    """A stage plan from names, ``(name, weight)`` pairs or ``{"name", "weight"}`` dicts."""
    plan = []
    for item in stages:
        if isinstance(item, str):
            name, weight = item, None
        elif isinstance(item, dict):
            name, weight = item.get("name"), item.get("weight")
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            name, weight = item
        else:
            raise InvalidArgument("HW_ERR_INVALID_MESSAGE", f"a stage is a name, (name, weight) or dict: {item!r}")
        entry: Dict[str, Any] = {"name": _text("stage name", name, _MAX_STAGE_NAME, required=True)}
        if weight is not None:
            if _number("stage weight", weight) <= 0:
                raise InvalidArgument("HW_ERR_INVALID_VALUE", f"a stage weight must be positive, got {weight!r}")
            entry["weight"] = weight
        plan.append(entry)
    return plan


def _failure(error: Any, code: Optional[str], retryable: Optional[bool]) -> Dict[str, Any]:
    """``{code?, message, retryable}`` of a ``failed`` event, from a message or an
    exception. An exception gives its ``code`` attribute when that is a string, else
    its class name, and its ``retryable`` attribute when that is a bool."""
    if isinstance(error, BaseException):
        message = str(error) or type(error).__name__
        if code is None:
            own = getattr(error, "code", None)
            code = own if isinstance(own, str) and 0 < len(own) <= _MAX_CODE else type(error).__name__
        if retryable is None:
            own = getattr(error, "retryable", None)
            retryable = own if isinstance(own, bool) else None
    else:
        message = error
    fields: Dict[str, Any] = {"message": _text("message", message, _MAX_MESSAGE, truncate=True) or "failed"}
    if code is not None:
        fields["code"] = _text("code", code, _MAX_CODE, required=True)
    fields["retryable"] = bool(retryable)
    return fields


def _percent_of(report: Dict[str, Any]) -> Optional[float]:
    if "percent" in report:
        return float(report["percent"])
    if "current" in report and report.get("total") is not None:
        return 0.0 if report["total"] == 0 else report["current"] * 100.0 / report["total"]
    return None


def _significant(new: Dict[str, Any], last: Optional[Dict[str, Any]], min_delta: float) -> bool:
    """Worth an event: the first report, a new message, unit or total, or a big enough
    move of the percent (of the count, when its extent is unknown)."""
    if last is None:
        return True
    if "message" in new and new["message"] != last.get("message"):
        return True
    if new.get("unit") != last.get("unit") or new.get("total") != last.get("total"):
        return True
    a, b = _percent_of(new), _percent_of(last)
    if a is not None and b is not None:
        # Rounded: 0.1 steps in floating point are a hair under 0.1.
        return round(abs(a - b), 9) >= min_delta
    return new.get("current") != last.get("current") or a != b


def _coalesce(older: Dict[str, Any], newer: Dict[str, Any]) -> Dict[str, Any]:
    """One report with the effect of two in a row at the hub: what the newer one
    leaves out and the hub would keep from the older (message, unit, total) is
    carried over."""
    merged = dict(newer)
    if "message" not in merged and "message" in older:
        merged["message"] = older["message"]
    same_unit = merged.get("unit", older.get("unit")) == older.get("unit")
    if "total" not in merged and "total" in older and same_unit:
        merged["total"] = older["total"]
    if "unit" not in merged and "unit" in older:
        merged["unit"] = older["unit"]
    return merged


# ---------------------------------------------------------------------------


class _Outgoing:
    """One queued event, until the hub answers for it."""

    __slots__ = ("job", "kind", "body", "n", "error")

    def __init__(self, job: "Job", kind: str, body: str, n: int) -> None:
        self.job = job
        self.kind = kind
        self.body = body  # the event as JSON, with its `job` and idempotency `key`
        self.n = n  # position in the client's queue; events are answered in order
        self.error: Optional[HeadwayError] = None


ControlListener = Callable[[Dict[str, bool], "Job"], None]


class Job:
    """A handle on one job, from ``Headway.create_job`` or ``Headway.job``; its
    methods may be called from any thread.

    ``progress``, ``stage``, ``log`` and ``metadata`` queue an event and return at
    once; ``complete``, ``fail`` and ``cancel`` return once the hub stored the end.
    Once the job has ended (reported here, or elsewhere: a batch ends with its
    children, a queued job is cancelled at once) further reports are ignored.

    As a context manager it reports how its block ended, unless the job ended
    already: ``completed`` on a normal exit, ``cancelled`` on ``JobCancelled``,
    ``failed`` on any other exception (which propagates)."""

    def __init__(self, client: "Headway", state: Dict[str, Any]) -> None:
        self._client = client
        self.id: str = state["id"]
        #: The user who may watch and control the job.
        self.owner: str = state["owner"]
        self.name: str = state.get("name") or ""
        self._state = state
        self._seq: int = state.get("seq", 0)
        self._status: str = state.get("status", "queued")
        control = state.get("control") or {}
        self._cancel_requested = bool(control.get("cancelRequested"))
        self._pause_requested = bool(control.get("paused"))
        # The stage plan's names, for an early error on an unknown stage.
        self._plan = [s["name"] for s in state.get("stages") or [] if s.get("weight", 0) > 0]
        self._ended = False  # this handle reported the end (queued or stored)
        self._gone: Optional[str] = "finished" if self._status in _TERMINAL else None  # or "deleted"
        self._paused_acked = False  # reported `paused`, and not `resumed` since
        self._resume_sent = False
        self._last_n = 0  # queue position of this job's newest event
        # Throttling: the newest report not sent yet, the last one sent, and when the next may go.
        self._pending: Optional[Dict[str, Any]] = None
        self._last_progress: Optional[Dict[str, Any]] = None
        self._next_progress_at = 0.0
        self._listeners: List[ControlListener] = []
        #: The hub's last refusal of one of this job's events (each is also logged).
        self.last_error: Optional[HeadwayError] = None
        #: Make every report a checkpoint: ``progress``, ``stage``, ``log`` and ``metadata``
        #: call ``check()`` first (raise ``JobCancelled`` after a cancel, wait out a pause).
        #: The task queue integrations set it for the jobs of the tasks they run.
        self.check_on_report = False
        self._cancel_sources: List[Callable[[], Optional[str]]] = []

    def __repr__(self) -> str:
        return f"<headway.Job {self.id!r} owner={self.owner!r} status={self.status!r}>"

    # -- what the worker knows ---------------------------------------------------

    @property
    def state(self) -> Dict[str, Any]:
        """The job's full state as last read (at creation and by the control watcher);
        ``refresh()`` reads it now. May lag behind ``control``."""
        with self._client._lock:
            return dict(self._state)

    @property
    def status(self) -> str:
        with self._client._lock:
            return self._status

    @property
    def seq(self) -> int:
        """Seq of the newest event this handle knows of."""
        with self._client._lock:
            return self._seq

    @property
    def control(self) -> Dict[str, bool]:
        """``{"cancelRequested", "paused"}`` as last learned from the hub."""
        with self._client._lock:
            return self._control()

    @property
    def cancelled(self) -> bool:
        """True once a cancel was requested (or the job was cancelled or deleted)."""
        with self._client._lock:
            return self._cancel_requested or self._status == "cancelled" or self._gone == "deleted"

    @property
    def paused(self) -> bool:
        """True while a pause is requested and no resume since."""
        with self._client._lock:
            return self._pause_requested

    @property
    def ended(self) -> bool:
        """True once the job ended: reported here, ended elsewhere, or deleted."""
        with self._client._lock:
            return self._ended or self._gone is not None

    def refresh(self) -> Dict[str, Any]:
        """Read the job's state from the hub now."""
        state = self._client._call("GET", _job_path(self.id))[0]
        self._client._apply(self, state["seq"], state.get("control") or {}, state)
        return dict(state)

    def on_control(self, listener: ControlListener) -> Callable[[], None]:
        """Call ``listener(control, job)`` whenever the control state changes (a cancel
        or pause requested, a resume), from the thread that learned it; returns a
        function that removes the listener. For work that cannot call ``check()``,
        such as a subprocess to terminate. A listener runs on one of the client's
        threads: it must return quickly, and not call ``flush()`` or an end."""
        with self._client._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._client._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    def add_cancel_source(self, source: Callable[[], Optional[str]]) -> None:
        """Another way a cancel reaches this job: ``check()`` (and so every checkpoint)
        calls ``source()`` and raises ``JobCancelled`` with the reason it returns,
        unless None. For a queue's own revoke, say."""
        with self._client._lock:
            self._cancel_sources.append(source)

    def check(self) -> None:
        """A safe point to stop or pause at. Returns at once while the job may run;
        raises ``JobCancelled`` once a cancel was requested (``JobDeleted`` once the
        job was deleted); while a pause is requested, reports ``paused`` and blocks
        until a resume (then reports ``resumed``) or a cancel."""
        client = self._client
        with client._lock:
            sources = list(self._cancel_sources) if not self._ended else []
        for source in sources:
            reason = source()
            if reason is not None:
                raise JobCancelled(self.id, reason)
        while True:
            with client._lock:
                if self._ended:
                    return
                if self._gone == "deleted":
                    raise JobDeleted(self.id)
                if self._cancel_requested or self._status == "cancelled":
                    raise JobCancelled(self.id)
                if client._closed:
                    raise _closed_error()
                if self._gone is not None:
                    return  # ended elsewhere; reports are ignored from now on
                if not self._pause_requested:
                    # Also finishes a resume of a job a previous worker paused.
                    if self._paused_acked or (self._status == "paused" and not self._resume_sent):
                        self._paused_acked = False
                        self._resume_sent = True
                        self._enqueue("resumed", {})
                    return
                if not self._paused_acked:
                    self._paused_acked = True
                    self._resume_sent = False
                    if self._status != "paused":  # a previous worker may have acknowledged it
                        self._enqueue("paused", {})
                if client._watching(self):
                    # Woken by each control change; the timeout only guards against a lost wake-up.
                    client._changed.wait(1.0)
                    continue
            # No watcher for this job: ask the hub from this thread while paused.
            client._poll_control(self)

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` as a checkpoint: raises ``JobCancelled`` as soon as a cancel
        arrives (within the control watcher's latency, well under a second), and while
        a pause is requested waits the pause out (reporting ``paused`` and ``resumed``)
        before it waits the rest. For work that waits rather than computes: a poll
        loop, a backoff, a rate limit. Without a control watcher it sleeps, then checks."""
        client = self._client
        deadline = time.monotonic() + max(0.0, _number("seconds", seconds))
        while True:
            self.check()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            with client._lock:
                watched = client._watching(self) and not self._ended and self._gone is None
                if watched and not (self._cancel_requested or self._pause_requested):
                    # Woken by each control change; the timeout only guards against a lost wake-up.
                    client._changed.wait(min(remaining, 1.0))
                    continue
            if not watched:
                time.sleep(remaining)
                self.check()
                return

    # -- reports ------------------------------------------------------------------

    def progress(
        self,
        percent: Optional[float] = None,
        current: Optional[float] = None,
        total: Optional[float] = None,
        unit: Optional[str] = None,
        message: Optional[str] = None,
    ) -> None:
        """Report progress: a ``percent`` (0-100; within the current stage when the
        job has a stage plan), or a ``current`` count with its ``total`` and ``unit``
        (``"bytes"``, ``"videos"`` ...) when known. Throttled: at most one event per
        ``progress_interval``, only when the percent moved by ``progress_min_delta``
        or the message, unit or total changed; the newest report is always sent."""
        if self.check_on_report:
            self.check()
        report: Dict[str, Any] = {}
        if percent is not None:
            if not 0 <= _number("percent", percent) <= 100:
                raise InvalidArgument("HW_ERR_INVALID_VALUE", f"percent must be 0-100, got {percent!r}")
            report["percent"] = percent
        for name, value in (("current", current), ("total", total)):
            if value is not None:
                if _number(name, value) < 0:
                    raise InvalidArgument("HW_ERR_INVALID_VALUE", f"{name} must not be negative, got {value!r}")
                report[name] = value
        if current is not None and total is not None and current > total:
            raise InvalidArgument("HW_ERR_INVALID_VALUE", f"current ({current}) is above total ({total})")
        if percent is None and current is None:
            raise InvalidArgument("HW_ERR_INVALID_VALUE", "progress needs a percent or a current count")
        if unit is not None:
            report["unit"] = _text("unit", unit, _MAX_UNIT, required=True)
        if message is not None:
            report["message"] = _text("message", message, _MAX_MESSAGE, truncate=True)
        client = self._client
        with client._lock:
            if not self._usable():
                return
            if self._pending is not None:
                report = _coalesce(self._pending, report)
            # Compared as the hub would show it: with the message, unit and total it keeps.
            shown = _coalesce(self._last_progress, report) if self._last_progress else report
            if not _significant(shown, self._last_progress, client._options["progress_min_delta"]):
                # The hub shows (nearly) this already; an older pending report would be less true.
                self._drop_pending()
                return
            now = time.monotonic()
            if self._pending is None and now >= self._next_progress_at and client._has_room():
                self._send_progress(report, now)
            else:
                self._pending = report
                client._pending_jobs.add(self)
                client._wake.notify()

    def stage(self, name: str, message: Optional[str] = None) -> None:
        """Enter a stage (a name of the plan, when the job has one). Sent at once."""
        if self.check_on_report:
            self.check()
        fields: Dict[str, Any] = {"name": _text("stage name", name, _MAX_STAGE_NAME, required=True)}
        if self._plan and name not in self._plan:
            raise InvalidArgument("HW_ERR_INVALID_VALUE", f"stage {name!r} is not in the plan {self._plan!r}")
        if message is not None:
            fields["message"] = _text("message", message, _MAX_MESSAGE, truncate=True)
        with self._client._lock:
            if self._usable():
                self._enqueue("stage", fields)
                # A new stage counts afresh: its first progress is always worth an event.
                self._last_progress = None

    def log(self, message: str, level: str = "info") -> None:
        """Append a line to the job's log: ``debug``, ``info``, ``warn`` (or ``warning``),
        ``error``; cut at 4096 characters. Sent at once; dropped when the queue is full."""
        if self.check_on_report:
            self.check()
        if level == "warning":
            level = "warn"
        if level not in _LOG_LEVELS:
            raise InvalidArgument("HW_ERR_INVALID_MESSAGE", f"level must be one of {_LOG_LEVELS}, got {level!r}")
        fields = {"message": _text("message", message, _MAX_MESSAGE, truncate=True), "level": level}
        with self._client._lock:
            if self._usable():
                self._enqueue("log", fields)

    def metadata(self, values: Optional[Dict[str, Any]] = None, /, **fields: Any) -> None:
        """Merge keys into the job's metadata, shallowly; a key set to None is removed:
        ``job.metadata(codec="h264")`` or ``job.metadata({"codec": "h264"})``. Sent at once."""
        merged: Dict[str, Any] = {}
        if values is not None:
            if not isinstance(values, dict):
                raise InvalidArgument("HW_ERR_INVALID_MESSAGE", "metadata must be a dict")
            merged.update(values)
        merged.update(fields)
        if not merged or not all(isinstance(k, str) for k in merged):
            raise InvalidArgument("HW_ERR_INVALID_MESSAGE", "metadata needs at least one key, all strings")
        with self._client._lock:
            if self._usable():
                self._enqueue("metadata", {"metadata": merged})

    def complete(self, result: Any = None) -> None:
        """The job succeeded, with an optional small JSON ``result`` (a URL, counts).
        Returns once the hub stored it, or at once when the job had already ended;
        raises ``HeadwayError`` when it was refused or could not be delivered (the
        job may then report its end again)."""
        self._end("completed", {} if result is None else {"result": result})

    def fail(self, error: Any, code: Optional[str] = None, retryable: Optional[bool] = None) -> None:
        """The job failed: ``error`` is a message or an exception; ``code`` a stable
        code (default: the exception's string ``code`` attribute or class name, else
        the hub's ``FAILED``); ``retryable`` whether trying again may succeed (default:
        the exception's ``retryable`` attribute, else False). Returns like ``complete``."""
        self._end("failed", {"error": _failure(error, code, retryable)})

    def cancel(self, reason: Optional[str] = None) -> None:
        """Report the job cancelled: acknowledges a cancel request, or gives up of the
        worker's own accord. Returns like ``complete``."""
        fields = {} if reason is None else {"reason": _text("reason", reason, _MAX_REASON, truncate=True)}
        self._end("cancelled", fields)

    def child(
        self,
        name: Optional[str] = None,
        *,
        owner: Optional[str] = None,
        stages: Any = None,
        metadata: Optional[Dict[str, Any]] = None,
        id: Optional[str] = None,
    ) -> "Job":
        """Create a job in this batch; its owner defaults to this job's. The hub rolls
        the children's progress up into this job, and ends it when every child has
        ended: create all the children before the first one ends."""
        return self._client.create_job(
            owner if owner is not None else self.owner,
            name=name,
            stages=stages,
            parent=self.id,
            metadata=metadata,
            id=id,
        )

    def flush(self, timeout: Optional[float] = None) -> None:
        """Send this job's pending progress now, and wait until the hub answered for
        every event it reported so far. Raises ``TimeoutError`` after ``timeout`` s."""
        client = self._client
        with client._lock:
            self._release_pending(wait=True)
            target = self._last_n
        if not client._wait_resolved(target, timeout):
            raise TimeoutError(f"events of job {self.id!r} not delivered within {timeout} s")

    def __enter__(self) -> "Job":
        return self

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> bool:
        if self.ended:
            return False
        try:
            if exc is None:
                self.complete()
            elif isinstance(exc, JobDeleted):
                pass
            elif isinstance(exc, JobCancelled):
                self.cancel(exc.reason)
            elif isinstance(exc, Exception):
                self.fail(exc)
            else:
                # KeyboardInterrupt, SystemExit: the worker stopped; the job itself may well succeed.
                self.fail(exc, code="INTERRUPTED", retryable=True)
        except HeadwayError as err:
            if err.code in _GONE_CODES:
                # Deleted meanwhile: there is nothing left to report to.
                logger.debug("headway: job %s is gone: %s", self.id, err.code)
            elif exc is None:
                raise
            else:
                # Never hide the block's own exception behind a reporting failure.
                logger.warning("headway: could not report how job %s ended: %s", self.id, err)
        return False

    # -- internals: called with the client's lock held ------------------------------

    def _control(self) -> Dict[str, bool]:
        return {"cancelRequested": self._cancel_requested, "paused": self._pause_requested}

    def _usable(self) -> bool:
        if self._client._closed:
            raise _closed_error()
        return not self._ended and self._gone is None

    def _send_progress(self, report: Dict[str, Any], now: float) -> None:
        self._last_progress = _coalesce(self._last_progress, report) if self._last_progress else report
        self._next_progress_at = now + self._client._options["progress_interval"]
        self._enqueue("progress", report, release=False)

    def _release_pending(self, wait: bool) -> None:
        """Queue the pending progress now; without ``wait``, only if there is room."""
        if self._pending is not None and (wait or self._client._has_room()):
            report = self._pending
            self._drop_pending()
            self._send_progress(report, time.monotonic())

    def _drop_pending(self) -> None:
        self._pending = None
        self._client._pending_jobs.discard(self)

    def _enqueue(self, kind: str, fields: Dict[str, Any], release: bool = True) -> Optional[_Outgoing]:
        client = self._client
        event = {"job": self.id, "kind": kind, "key": str(uuid.uuid4())}
        event.update(fields)
        body = _dumps(event)  # a value that is not JSON raises here, before anything changed
        if kind == "log" and not client._has_room():
            client._drop("log event", self.id)
            return None
        if release:
            # Keep the order of reports: the newest progress goes before what follows it.
            self._release_pending(wait=True)
        return client._enqueue(self, kind, body)

    def _end(self, kind: str, fields: Dict[str, Any]) -> None:
        client = self._client
        with client._lock:
            if not self._usable():
                return
            out = self._enqueue(kind, fields)
            assert out is not None  # only log events are ever dropped
            self._ended = True
        client._wait_resolved(out.n, None)
        error = out.error
        if error is not None and error.code not in _GONE_CODES:
            # Not stored: refused, or not delivered. The worker may report an end again.
            with client._lock:
                self._ended = False
            raise error
        if error is None:
            with client._lock:
                # Stored: the job's status is its end's, whether or not the control
                # watcher read the final state before it stopped.
                self._status = kind
        client._release(self)
        if error is not None and error.code != "HW_ERR_JOB_FINISHED":
            raise error  # deleted, or never existed


class Headway:
    """A worker's connection to a Headway hub; one per process serves all its jobs.

    ``url`` and ``api_key`` default to the ``HEADWAY_URL`` and ``HEADWAY_API_KEY``
    environment variables; a missing one raises ``ConfigError`` naming it. Keyword
    arguments override ``DEFAULTS`` (see there for meaning and units);
    ``ssl_context`` is used for an https:// hub.

    Threads start on first use: one sender, and one control watcher per active
    job. ``close()``, or the end of a ``with Headway() as hw:`` block, delivers what
    is queued and joins them; at interpreter exit a client not closed delivers what
    it can within 5 s. After ``os.fork()`` the child starts afresh (create jobs in
    the process that runs them)."""

    def __init__(
        self,
        url: Optional[str] = None,
        api_key: Optional[str] = None,
        *,
        ssl_context: Optional[ssl.SSLContext] = None,
        **options: Any,
    ) -> None:
        url = url if url is not None else os.environ.get("HEADWAY_URL")
        api_key = api_key if api_key is not None else os.environ.get("HEADWAY_API_KEY")
        if not url:
            raise ConfigError("url", "the hub URL is missing: pass url= or set HEADWAY_URL", "HEADWAY_URL")
        if not api_key:
            raise ConfigError(
                "api_key", "the API key is missing: pass api_key= or set HEADWAY_API_KEY", "HEADWAY_API_KEY"
            )
        unknown = sorted(set(options) - set(DEFAULTS))
        if unknown:
            raise TypeError(f"Headway() got unknown option(s): {', '.join(unknown)}")
        self._options = {**DEFAULTS, **options}
        zero_allowed = ("progress_interval", "progress_min_delta", "min_backoff")
        for name, value in self._options.items():
            if name == "watch_control" or (name == "retry_timeout" and value is None):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(name, f"{name} must be a number, got {value!r}")
            if value < 0 or (value == 0 and name not in zero_allowed):
                kind = "non-negative" if name in zero_allowed else "positive"
                raise ConfigError(name, f"{name} must be a {kind} number, got {value!r}")
        if self._options["max_batch_events"] > 1000:
            raise ConfigError("max_batch_events", "max_batch_events may not exceed 1000 (the hub's limit)")
        self.url = url.rstrip("/")
        self._target = _Target(self.url)
        self._ssl = ssl_context
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"headway-python/{__version__}",
        }
        self._reset()
        # Deliver what is queued at interpreter exit, and start afresh in a forked
        # child; through weak references, so that neither keeps the client alive.
        ref = weakref.ref(self)
        self._atexit = lambda: _call_weak(ref, "_at_exit")
        atexit.register(self._atexit)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=lambda: _call_weak(ref, "_reset"))

    def _reset(self) -> None:
        """Fresh internal state: at construction, and in a forked child, where the
        parent's threads do not run and its connections are not ours."""
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # for the sender: something to send
        self._resolved_cond = threading.Condition(self._lock)  # events were answered, or room freed
        self._changed = threading.Condition(self._lock)  # a job's control state changed
        self._queue: Deque[_Outgoing] = collections.deque()
        self._pending_jobs: Set[Job] = set()
        self._enqueued = 0
        self._resolved = 0
        self._in_flight = 0
        self._sent = 0
        self._dropped = 0
        self._jobs: Dict[str, Job] = {}  # open jobs
        self._watchers: Dict[str, _Watcher] = {}
        self._threads: List[threading.Thread] = []  # watchers not joined yet
        self._sender: Optional[threading.Thread] = None
        self._sender_conn = _Connection(self._target, self._ssl)
        self._pool: List[_Connection] = []
        self._abort = threading.Event()  # stop retrying: close() gave up
        self._stopping = False
        self._closed = False
        self._warned_watch_limit = False

    # -- public API -------------------------------------------------------------------

    def create_job(
        self,
        owner: str,
        name: Optional[str] = None,
        stages: Any = None,
        parent: Optional[str] = None,
        metadata: Optional[Dict[str, Any]] = None,
        id: Optional[str] = None,
        public: Optional[bool] = None,
        kind: Optional[str] = None,
    ) -> Job:
        """Create a job owned by the user ``owner`` (who may watch and control it) and
        start watching its control state.

        ``stages`` is a plan: names, ``(name, weight)`` pairs or ``{"name", "weight"}``
        dicts; a percent reported within a stage is weighted into the overall percent.
        ``parent`` puts the job in a batch. ``kind`` (``"transcode"``) names what sort
        of work it is, in ``metadata["kind"]``. The ``id`` is generated when absent, so
        that a retried request cannot create the job twice. Raises ``HeadwayError``
        with the hub's code (``HW_ERR_JOB_EXISTS`` ...) or ``HW_WORKER_UNREACHABLE``."""
        self._check_open()
        body: Dict[str, Any] = {
            "id": str(uuid.uuid4()) if id is None else _check_job_id(id),
            "owner": _text("owner", owner, _MAX_NAME, required=True),
        }
        if name is not None:
            body["name"] = _text("name", name, _MAX_NAME)
        if parent is not None:
            body["parent"] = _check_job_id(parent)
        if stages is not None:
            body["stages"] = _stages(stages)
        if metadata is not None:
            if not isinstance(metadata, dict):
                raise InvalidArgument("HW_ERR_INVALID_MESSAGE", "metadata must be a dict")
            body["metadata"] = metadata
        if kind is not None:
            body["metadata"] = {**body.get("metadata", {}), "kind": _text("kind", kind, _MAX_NAME, required=True)}
        if public is not None:
            body["public"] = bool(public)
        try:
            state = self._call("POST", "/v1/jobs", body)[0]
        except HeadwayError as err:
            if err.code != "HW_ERR_JOB_EXISTS" or id is not None or not getattr(err, "retried", False):
                raise
            # An earlier attempt was stored and its answer lost: the generated id is ours.
            state = self._call("GET", _job_path(body["id"]))[0]
        return self._adopt(state)

    def job(self, id: str) -> Job:
        """A handle on an existing job (created by a back end, say), read from the hub:
        ``HW_ERR_NOT_FOUND`` when there is none. The same handle while the job is open."""
        _check_job_id(id)
        self._check_open()
        with self._lock:
            existing = self._jobs.get(id)
        if existing is not None:
            return existing
        return self._adopt(self._call("GET", _job_path(id))[0])

    def mint_token(
        self, user: str, jobs: Optional[List[str]] = None, ttl: Optional[float] = None
    ) -> Dict[str, Any]:
        """A browser token for ``user`` (``POST /v1/tokens``): all of the user's jobs, or
        only ``jobs`` (and their children); ``ttl`` in seconds defaults to the hub's
        ``token-ttl-seconds``. Returns ``{"token", "expiresAt"}``. Waits for the hub."""
        body: Dict[str, Any] = {"user": _text("user", user, _MAX_NAME, required=True)}
        if jobs is not None:
            body["jobs"] = [_check_job_id(j) for j in jobs]
        if ttl is not None:
            body["ttl"] = _number("ttl", ttl)
        self._check_open()
        return self._call("POST", "/v1/tokens", body)[0]

    def request_control(self, job_id: str, action: str, reason: Optional[str] = None) -> Dict[str, Any]:
        """Ask for a ``cancel``, ``pause`` or ``resume`` of a job, as its owner would
        from a browser (``POST /v1/jobs/:id/<action>``); returns the job state. For a
        back end that stops a job on a user's behalf, or a queue's own revoke. A queued
        job is cancelled at once; a running one when its worker acknowledges."""
        if action not in ("cancel", "pause", "resume"):
            raise InvalidArgument("HW_ERR_INVALID_MESSAGE", f"action is cancel, pause or resume, got {action!r}")
        body = {} if reason is None else {"reason": _text("reason", reason, _MAX_REASON, truncate=True)}
        self._check_open()
        return self._call("POST", f"{_job_path(_check_job_id(job_id))}/{action}", body)[0]

    def flush(self, timeout: Optional[float] = None) -> None:
        """Send every job's pending progress now, and wait until the hub answered for
        every event reported so far. Raises ``TimeoutError`` after ``timeout`` s."""
        with self._lock:
            for job in list(self._pending_jobs):
                job._release_pending(wait=True)
            target = self._enqueued
        if not self._wait_resolved(target, timeout):
            raise TimeoutError(f"events not delivered within {timeout} s")

    def close(self, timeout: Optional[float] = None) -> None:
        """Deliver what is queued, waiting up to ``timeout`` seconds (default
        ``close_timeout``), drop the rest (logged, ``HW_WORKER_DROPPED``), and stop and
        join every thread. Jobs left open stay as they are at the hub; later reports
        raise ``HW_WORKER_CLOSED``. Safe to call twice."""
        if timeout is None:
            timeout = self._options["close_timeout"]
        with self._lock:
            if self._closed and self._sender is None and not self._threads:
                return
            for job in list(self._pending_jobs):
                job._release_pending(wait=False)
            for job in list(self._pending_jobs):
                job._drop_pending()
                self._drop("progress event", job.id)
            self._closed = True
            target = self._enqueued
            watchers = list(self._watchers.values())
            self._watchers.clear()
            threads, self._threads = self._threads, []
            self._changed.notify_all()
            self._resolved_cond.notify_all()
        for watcher in watchers:
            watcher.stop()
        delivered = self._wait_resolved(target, timeout)
        with self._lock:
            self._stopping = True
            sender, self._sender = self._sender, None
            self._wake.notify_all()
        if not delivered:
            self._abort.set()
            self._sender_conn.interrupt()
        if sender is not None:
            sender.join()
        for thread in threads:
            thread.join()
        self._sender_conn.close()
        with self._lock:
            pool, self._pool = self._pool, []
            self._jobs.clear()
        for conn in pool:
            conn.close()
        atexit.unregister(self._atexit)

    def stats(self) -> Dict[str, int]:
        """Events queued, in flight, stored and dropped; jobs open."""
        with self._lock:
            return {
                "queued": len(self._queue),
                "in_flight": self._in_flight,
                "sent": self._sent,
                "dropped": self._dropped,
                "open_jobs": len(self._jobs),
            }

    def __enter__(self) -> "Headway":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<headway.Headway {self.url!r}>"

    # -- jobs and control ---------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise _closed_error()

    def _adopt(self, state: Dict[str, Any]) -> Job:
        with self._lock:
            job = self._jobs.get(state["id"])
            if job is not None:
                return job
            job = Job(self, state)
            if job._gone is None and not self._closed:
                self._jobs[job.id] = job
                self._watch(job)
        return job

    def _watch(self, job: Job) -> None:
        if not self._options["watch_control"]:
            return
        if len(self._watchers) >= self._options["max_watched_jobs"]:
            if not self._warned_watch_limit:
                self._warned_watch_limit = True
                logger.warning(
                    "headway: %d jobs watched already; job %s learns of control requests from report answers",
                    len(self._watchers),
                    job.id,
                )
            return
        self._threads = [t for t in self._threads if t.is_alive()]
        watcher = _Watcher(self, job)
        self._watchers[job.id] = watcher
        self._threads.append(watcher)
        watcher.start()

    def _watching(self, job: Job) -> bool:
        watcher = self._watchers.get(job.id)
        return watcher is not None and watcher.is_alive()

    def _release(self, job: Job) -> None:
        """The job ended for its handle: forget it and stop watching it."""
        with self._lock:
            watcher = self._watchers.pop(job.id, None)
            if self._jobs.get(job.id) is job:
                del self._jobs[job.id]
            job._drop_pending()
        if watcher is not None:
            watcher.stop()

    def _apply(self, job: Job, seq: int, control: Dict[str, Any], state: Optional[Dict[str, Any]] = None) -> None:
        """Adopt what the hub said of a job at ``seq`` (a full state, or the control
        state of an answer to a report), unless something newer is known."""
        listeners: List[ControlListener] = []
        with self._lock:
            if seq < job._seq:
                return
            before = job._control()
            job._seq = seq
            job._cancel_requested = bool(control.get("cancelRequested"))
            job._pause_requested = bool(control.get("paused"))
            if state is not None:
                job._state = state
                job._status = state.get("status", job._status)
                if job._status in _TERMINAL and job._gone is None:
                    job._gone = "finished"
                    self._forget(job)
            after = job._control()
            if after != before and not job._ended and job._gone is None:
                # Not for the end itself, which clears the control state.
                listeners = list(job._listeners)
            self._changed.notify_all()
        for listener in listeners:
            try:
                listener(after, job)
            except Exception:  # noqa: BLE001 - a listener's failure is its own
                logger.exception("headway: control listener of job %s failed", job.id)

    def _mark_gone(self, job: Job, how: str) -> None:
        with self._lock:
            if job._gone != "deleted":
                job._gone = how
            self._forget(job)
            self._changed.notify_all()

    def _forget(self, job: Job) -> None:
        """The job ended elsewhere or is gone (lock held); its watcher ends by itself."""
        job._drop_pending()
        if self._jobs.get(job.id) is job:
            del self._jobs[job.id]

    def _poll_control(self, job: Job) -> None:
        """One control long-poll from the caller's thread (a paused job without a watcher)."""
        wait = min(self._options["control_wait"], 5.0)
        try:
            state = self._call("GET", f"{_job_path(job.id)}?since={job.seq}&wait={wait:g}", extra_timeout=wait)[0]
        except HeadwayError as err:
            if err.code in _GONE_CODES:
                self._mark_gone(job, _GONE_CODES[err.code])
                return
            raise
        self._apply(job, state["seq"], state.get("control") or {}, state)

    # -- the queue ------------------------------------------------------------------------

    def _has_room(self) -> bool:
        return len(self._queue) < self._options["max_queue"]

    def _drop(self, what: str, job_id: str) -> None:
        self._dropped += 1
        if self._dropped == 1 or self._dropped % 1000 == 0:
            logger.warning(
                "headway: %s of job %s dropped (%d so far): queue full or closed", what, job_id, self._dropped
            )

    def _enqueue(self, job: Job, kind: str, body: str) -> _Outgoing:
        """Queue one serialized event (lock held), waiting for room; starts the sender."""
        while not self._has_room():
            if self._closed:
                raise _closed_error()
            self._resolved_cond.wait()
        if self._stopping:
            raise _closed_error()
        self._enqueued += 1
        out = _Outgoing(job, kind, body, self._enqueued)
        job._last_n = out.n
        self._queue.append(out)
        if self._sender is None:
            self._sender = threading.Thread(target=self._run_sender, name="headway-sender", daemon=True)
            self._sender.start()
        self._wake.notify()
        return out

    def _wait_resolved(self, n: int, timeout: Optional[float]) -> bool:
        """Wait until every event up to queue position ``n`` has its answer."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._resolved < n:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._resolved_cond.wait(remaining)
            return True

    def _run_sender(self) -> None:
        while True:
            with self._lock:
                while True:
                    now = time.monotonic()
                    due = None
                    for job in list(self._pending_jobs):
                        if job._next_progress_at <= now:
                            # Only with room: this thread must never wait for itself.
                            job._release_pending(wait=False)
                        elif due is None or job._next_progress_at < due:
                            due = job._next_progress_at
                    if self._queue:
                        break
                    if self._stopping:
                        return
                    self._wake.wait(None if due is None else max(0.0, due - now))
                batch = self._take_batch()
                self._in_flight = len(batch)
            try:
                self._deliver(batch)
            except BaseException as err:  # never leave a waiter hanging
                failure = HeadwayError("HW_WORKER_BAD_RESPONSE", f"sending failed: {err!r}")
                self._fail([o for o in batch if o.error is None], failure)
                logger.exception("headway: sending failed")
            with self._lock:
                self._in_flight = 0
                self._sent += sum(1 for o in batch if o.error is None)
                self._resolved = batch[-1].n
                self._resolved_cond.notify_all()

    def _take_batch(self) -> List[_Outgoing]:
        batch: List[_Outgoing] = []
        size = 0
        max_events, max_bytes = self._options["max_batch_events"], self._options["max_batch_bytes"]
        while self._queue and len(batch) < max_events:
            size += len(self._queue[0].body) + 1
            if batch and size > max_bytes:
                break
            batch.append(self._queue.popleft())
        return batch

    def _deliver(self, batch: List[_Outgoing]) -> None:
        """Post events until each is stored, refused, or given up."""
        remaining = batch
        limit = self._options["retry_timeout"]
        deadline = None if limit is None else time.monotonic() + limit
        attempt = 0
        while remaining:
            if self._abort.is_set():
                self._fail(remaining, HeadwayError("HW_WORKER_DROPPED", "the client closed before they were delivered"))
                return
            body = ('{"events":[' + ",".join(o.body for o in remaining) + "]}").encode("utf-8")
            retry_after: Optional[float] = None
            try:
                status, headers, data = self._request(self._sender_conn, "POST", "/v1/events", body, 0.0)
            except _NETWORK_ERRORS as err:
                problem: Any = err
            else:
                parsed = _parse_json(data)
                if status == 200 and isinstance(parsed, dict) and isinstance(parsed.get("results"), list):
                    remaining = self._settle(remaining, parsed["results"])
                    problem = "the hub could not store them yet"
                elif _retryable_status(status):
                    problem = _error_from(status, data, headers)
                    retry_after = problem.retry_after
                else:
                    self._fail(remaining, _error_from(status, data, headers))
                    return
            if not remaining:
                return
            delay = self._backoff(attempt, retry_after)
            if deadline is not None and time.monotonic() + delay > deadline:
                self._fail(remaining, HeadwayError("HW_WORKER_UNREACHABLE", f"gave up after {limit} s: {problem}"))
                return
            # A blip is retried quietly; a hub away for a while is worth a warning now and then.
            log = logger.warning if attempt % 10 == 3 else logger.debug
            log("headway: %d event(s) not delivered yet, retrying: %s", len(remaining), problem)
            self._abort.wait(delay)
            attempt += 1

    def _settle(self, sent: List[_Outgoing], results: List[Any]) -> List[_Outgoing]:
        """Apply the per-job results of one request; returns the events to send again."""
        by_job = {r.get("job"): r for r in results if isinstance(r, dict)}
        groups: Dict[str, List[_Outgoing]] = {}
        for out in sent:
            groups.setdefault(out.job.id, []).append(out)
        again: Set[int] = set()
        for job_id, outs in groups.items():
            result = by_job.get(job_id)
            job = outs[0].job
            if result is None:
                self._fail(outs, HeadwayError("HW_WORKER_BAD_RESPONSE", "no result for the job", job=job_id))
            elif isinstance(result.get("error"), dict):
                code = str(result["error"].get("code"))
                error = HeadwayError(code, str(result["error"].get("message", "")), job=job_id)
                if code in _RETRYABLE_CODES:
                    again.update(id(o) for o in outs)
                elif code in _SPLIT_CODES and len(outs) > 1:
                    for out in outs:
                        self._deliver([out])
                else:
                    if code in _GONE_CODES:
                        self._mark_gone(job, _GONE_CODES[code])
                    self._fail(outs, error)
            else:
                self._apply(job, int(result.get("seq", 0)), result.get("control") or {})
        return [o for o in sent if id(o) in again]

    def _fail(self, outs: List[_Outgoing], error: HeadwayError) -> None:
        for out in outs:
            out.error = error
            out.job.last_error = error
            if error.code == "HW_WORKER_DROPPED":
                with self._lock:
                    self._drop(f"{out.kind} event", out.job.id)
            elif out.kind not in _TERMINAL and error.code != "HW_ERR_JOB_FINISHED":
                # An end raises in the call that reported it; other events can only be logged.
                logger.warning("headway: %s event of job %s not stored: %s", out.kind, out.job.id, error)

    def _backoff(self, attempt: int, retry_after: Optional[float]) -> float:
        cap = self._options["max_backoff"]
        delay = min(cap, self._options["min_backoff"] * (2 ** min(attempt, 30)))
        delay *= random.random()  # full jitter, so that many workers do not retry in step
        if retry_after is not None:
            delay = max(delay, min(retry_after, _MAX_RETRY_AFTER))
        return delay

    # -- requests -----------------------------------------------------------------------

    def _request(
        self, conn: _Connection, method: str, path: str, body: Optional[bytes], extra_timeout: float
    ) -> Tuple[int, http.client.HTTPMessage, bytes]:
        timeout = self._options["request_timeout"] + extra_timeout
        try:
            return conn.request(method, path, body, self._headers, timeout)
        except _STALE_ERRORS:
            if not conn.reused or self._abort.is_set():
                raise
        return conn.request(method, path, body, self._headers, timeout)

    def _call(self, method: str, path: str, body: Any = None, *, extra_timeout: float = 0.0) -> Tuple[Any, bool]:
        """One request from the caller's thread, retried up to ``max_attempts`` times.
        Returns the JSON answer and whether it took a retry; raises ``HeadwayError``
        (with ``retried`` set when the hub refused a retried request)."""
        payload = None if body is None else _dumps(body).encode("utf-8")
        with self._lock:
            conn = self._pool.pop() if self._pool else _Connection(self._target, self._ssl)
        try:
            attempt = 0
            while True:
                retry_after: Optional[float] = None
                try:
                    status, headers, data = self._request(conn, method, path, payload, extra_timeout)
                except _NETWORK_ERRORS as err:
                    problem: Any = err
                else:
                    if 200 <= status < 300:
                        parsed = _parse_json(data)
                        if not isinstance(parsed, dict):
                            raise HeadwayError("HW_WORKER_BAD_RESPONSE", f"HTTP {status} without a JSON object")
                        return parsed, attempt > 0
                    error = _error_from(status, data, headers)
                    if not _retryable_status(status):
                        error.retried = attempt > 0  # type: ignore[attr-defined]
                        raise error
                    problem, retry_after = error, error.retry_after
                attempt += 1
                if attempt >= self._options["max_attempts"] or self._abort.is_set():
                    raise HeadwayError("HW_WORKER_UNREACHABLE", f"{method} {path}: {attempt} attempt(s): {problem}")
                self._abort.wait(self._backoff(attempt - 1, retry_after))
        finally:
            with self._lock:
                keep = len(self._pool) < 4 and not self._closed
                if keep:
                    self._pool.append(conn)
            if not keep:
                conn.close()

    def _at_exit(self) -> None:
        try:
            self.close(timeout=5.0)
        except Exception:  # noqa: BLE001 - nothing more to do at exit
            pass


def _call_weak(ref: "weakref.ReferenceType[Headway]", method: str) -> None:
    client = ref()
    if client is not None:
        getattr(client, method)()


class _Watcher(threading.Thread):
    """Long-polls one job's state, so that control requests reach a worker that is
    busy and silent. Ends when the job ends or is deleted, or on ``stop()``."""

    def __init__(self, client: Headway, job: Job) -> None:
        super().__init__(name=f"headway-control-{job.id}", daemon=True)
        self._client = client
        self._job = job
        self._stop_event = threading.Event()
        self._conn = _Connection(client._target, client._ssl)

    def stop(self) -> None:
        self._stop_event.set()
        self._conn.interrupt()

    def run(self) -> None:
        client, job = self._client, self._job
        wait = client._options["control_wait"]
        attempt = 0
        try:
            while not self._stop_event.is_set():
                retry_after: Optional[float] = None
                path = f"{_job_path(job.id)}?since={job.seq}&wait={wait:g}"
                try:
                    status, headers, data = client._request(self._conn, "GET", path, None, wait)
                except _NETWORK_ERRORS as err:
                    if self._stop_event.is_set():
                        return
                    logger.debug("headway: control poll of job %s failed: %r", job.id, err)
                else:
                    state = _parse_json(data) if status == 200 else None
                    if isinstance(state, dict) and isinstance(state.get("seq"), int):
                        attempt = 0
                        client._apply(job, state["seq"], state.get("control") or {}, state)
                        if state.get("status") in _TERMINAL:
                            return
                        continue
                    if status in (404, 410):
                        client._mark_gone(job, "deleted")
                        return
                    error = _error_from(status, data, headers)
                    retry_after = error.retry_after
                    if not _retryable_status(status):
                        logger.warning("headway: control poll of job %s refused: %s", job.id, error)
                self._stop_event.wait(client._backoff(attempt, retry_after))
                attempt += 1
        finally:
            self._conn.close()
            with client._lock:
                if client._watchers.get(job.id) is self:
                    del client._watchers[job.id]
                client._changed.notify_all()
