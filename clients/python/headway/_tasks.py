"""What the task queue integrations (``headway.celery``, ``headway.rq``) share:
the Headway job of each attempt of a task, the job spec from the task's options
and the caller's, and the job of the task that runs in this thread."""

from __future__ import annotations

import json
import threading
from typing import Any, Dict, Mapping, Optional, Sequence

from .client import Headway, HeadwayError, Job

#: The keys of a job spec: what the caller or the task's options may say of its Headway job.
SPEC_KEYS = ("owner", "name", "kind", "stages", "metadata", "public")
#: Largest result copied to the Headway job, serialized bytes (the hub takes 16 KiB).
MAX_RESULT_BYTES = 16 * 1024
_MAX_ID = 128

Spec = Dict[str, Any]


def attempt_id(base: str, attempt: int) -> str:
    """The Headway id of attempt ``attempt`` (1-based) of the task ``base``: the task
    id itself for the first, ``<id>:attempt-<n>`` for the later ones (as the BullMQ bridge)."""
    return base if attempt <= 1 else f"{base[: _MAX_ID - 20]}:attempt-{attempt}"


def resolve_spec(layers: Sequence[Optional[Mapping[str, Any]]], args: Sequence[Any], kwargs: Mapping[str, Any]) -> Spec:
    """One spec from layers, later ones winning (install defaults, task options,
    the caller's); a callable value is called with ``(args, kwargs)``."""
    spec: Spec = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if key not in SPEC_KEYS:
                raise TypeError(f"unknown Headway job option {key!r}; known: {', '.join(SPEC_KEYS)}")
            spec[key] = value
    for key, value in list(spec.items()):
        if callable(value):
            spec[key] = value(tuple(args), dict(kwargs))
    return spec


def plain_spec(spec: Spec) -> Spec:
    """The spec as it travels in a message header: JSON values only (callables resolved)."""
    out = {k: v for k, v in spec.items() if v is not None}
    if "stages" in out:
        out["stages"] = [list(s) if isinstance(s, tuple) else s for s in out["stages"]]
    return out


def open_attempt(
    hw: Headway, base: str, attempt: int, spec: Spec, queue_meta: Dict[str, Any], *, key: str
) -> Job:
    """The Headway job of an attempt: created (queued) when it does not exist yet,
    else the existing one. Later attempts name the one before in ``retryOf``."""
    job_id = attempt_id(base, attempt)
    metadata = dict(spec.get("metadata") or {})
    metadata[key] = queue_meta
    if attempt > 1:
        metadata["retryOf"] = attempt_id(base, attempt - 1)
        metadata["attempt"] = attempt
    owner = spec.get("owner")
    if not owner:
        # No owner said: the job is attached if it exists (a back end created it).
        return hw.job(job_id)
    stages = spec.get("stages")
    try:
        return hw.create_job(
            str(owner),
            name=spec.get("name"),
            stages=[tuple(s) if isinstance(s, list) else s for s in stages] if stages else None,
            metadata=metadata,
            id=job_id,
            public=spec.get("public"),
            kind=spec.get("kind"),
        )
    except HeadwayError as err:
        if err.code != "HW_ERR_JOB_EXISTS":
            raise
        # Created before: by the caller at enqueue time, or by an earlier event of this attempt.
        return hw.job(job_id)


def spec_of_job(job: Job) -> Spec:
    """The spec of an attempt's job, to give the next attempt the same owner, name and plan."""
    state = job.state
    metadata = dict(state.get("metadata") or {})
    spec: Spec = {"owner": job.owner, "name": state.get("name")}
    if metadata.get("kind"):
        spec["kind"] = metadata.pop("kind")
    for internal in ("retryOf", "attempt", "celery", "rq"):
        metadata.pop(internal, None)
    if metadata:
        spec["metadata"] = metadata
    plan = [(s["name"], s.get("weight", 1)) for s in state.get("stages") or []]
    if plan:
        spec["stages"] = plan
    if state.get("public"):
        spec["public"] = True
    return spec


def result_of(value: Any) -> Any:
    """A task's return value as the job's result, when it is JSON and small enough; else None."""
    if value is None:
        return None
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return None
    return value if len(text.encode("utf-8")) <= MAX_RESULT_BYTES else None


class Current:
    """The Headway job of the task that runs in this thread."""

    def __init__(self) -> None:
        self._local = threading.local()

    def set(self, job: Optional[Job]) -> None:
        self._local.job = job

    def get(self) -> Optional[Job]:
        return getattr(self._local, "job", None)

    def require(self, where: str) -> Job:
        job = self.get()
        if job is None:
            raise RuntimeError(f"no Headway job here: call current_job() inside a task run by {where}")
        return job
