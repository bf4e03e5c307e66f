"""Headway for Python: report the progress of long-running jobs to a Headway hub
and honour cancel and pause requests from the browser.

The core (this package, ``headway.client``) is standard library only. The
integrations import their framework when they are imported, never before:

- ``headway.aio`` — the same API for ``asyncio`` code (FastAPI handlers, ARQ);
- ``headway.celery`` — one call wires a Celery app: each task run is a job;
- ``headway.rq`` — the same for RQ jobs;
- ``headway.fastapi`` — a router that mints browser tokens for the app's user.
"""

from .client import (
    DEFAULTS,
    PROTOCOL_VERSION,
    ConfigError,
    Headway,
    HeadwayError,
    InvalidArgument,
    Job,
    JobCancelled,
    JobDeleted,
    __version__,
    logger,
)

__all__ = [
    "DEFAULTS",
    "PROTOCOL_VERSION",
    "ConfigError",
    "Headway",
    "HeadwayError",
    "InvalidArgument",
    "Job",
    "JobCancelled",
    "JobDeleted",
    "__version__",
    "logger",
]
