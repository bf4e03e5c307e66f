"""A Celery app whose tasks report to Headway.

Worker, in this folder:   python3 -m celery -A tasks worker --loglevel=info
Enqueue, in this folder:  python3 -c 'import tasks; print(tasks.start_transcode(5, "alice"))'

Configured by HEADWAY_URL, HEADWAY_API_KEY and CELERY_BROKER_URL (default
redis://127.0.0.1:6379/0); HEADWAY_LEASE_TIMEOUT (seconds, default 30) is how
long the job of a worker killed outright stays running.
"""

import os
import sys

try:
    import headway  # noqa: F401 - installed with `pip install ./clients/python`
except ImportError:  # run from a checkout without installing: use the repository's copy
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python"))

from celery import Celery
from headway.celery import current_job, install

app = Celery("tasks", broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.task_default_queue = os.environ.get("CELERY_QUEUE", "celery")
# One task at a time per pool process, so that a cancel or a kill concerns one task.
app.conf.worker_prefetch_multiplier = 1

headway = install(app, lease_timeout=float(os.environ.get("HEADWAY_LEASE_TIMEOUT", "30")))


@app.task(headway={"name": "Transcode", "kind": "transcode", "stages": [("probe", 1), ("encode", 8), ("package", 1)]})
def transcode(seconds):
    """Pretend to transcode for `seconds` seconds, reporting about every 100 ms.
    A cancel or pause from the browser reaches it at its next report or sleep."""
    job = current_job()
    steps = max(1, int(seconds * 10))
    job.stage("probe")
    job.log("probing the source")
    job.sleep(0)
    job.stage("encode")
    for step in range(1, steps + 1):
        job.sleep(seconds / steps)  # the work; a checkpoint: cancel and pause arrive here too
        job.progress(current=step, total=steps, unit="chunks", message=f"chunk {step} of {steps}")
    job.stage("package")
    return {"url": f"https://cdn.example/{job.id}.m3u8", "chunks": steps}


def start_transcode(seconds, owner):
    """Enqueue a transcode for the user `owner`, who may watch and cancel it; returns the task id."""
    return headway.apply_async(transcode, (seconds,), owner=owner).id
