"""RQ jobs that report to Headway.

Worker, in this folder:   python3 -m rq.cli worker -w headway.rq.HeadwayWorker transcodes
Enqueue, in this folder:  python3 -c 'import jobs; print(jobs.start_transcode(5, "alice"))'

Configured by HEADWAY_URL, HEADWAY_API_KEY and RQ_REDIS_URL (default
redis://127.0.0.1:6379/0); HEADWAY_LEASE_TIMEOUT (seconds, default 30) is how
long the job of a worker killed outright stays running.
"""

import os
import sys

try:
    import headway  # noqa: F401 - installed with `pip install ./clients/python`
except ImportError:  # run from a checkout without installing: use the repository's copy
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python"))

from headway.rq import current_job, enqueue
from redis import Redis
from rq import Queue, Retry

QUEUE = os.environ.get("RQ_QUEUE", "transcodes")


def transcode(seconds):
    """Pretend to transcode for `seconds` seconds, reporting about every 100 ms.
    A cancel or pause from the browser reaches it at its next report or sleep."""
    job = current_job()
    steps = max(1, int(seconds * 10))
    job.stage("probe")
    job.sleep(0)
    job.stage("encode")
    for step in range(1, steps + 1):
        job.sleep(seconds / steps)  # the work; a checkpoint: cancel and pause arrive here too
        job.progress(current=step, total=steps, unit="chunks")
    job.stage("package")
    return {"url": f"https://cdn.example/{job.id}.m3u8"}


def start_transcode(seconds, owner):
    """Enqueue a transcode for the user `owner`, who may watch and cancel it; returns the RQ job id."""
    queue = Queue(QUEUE, connection=Redis.from_url(os.environ.get("RQ_REDIS_URL", "redis://127.0.0.1:6379/0")))
    rq_job = enqueue(
        queue,
        transcode,
        seconds,
        owner=owner,
        name="Transcode",
        kind="transcode",
        stages=[("probe", 1), ("encode", 8), ("package", 1)],
        retry=Retry(max=2),
    )
    return rq_job.id
