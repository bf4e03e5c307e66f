"""The Celery app of test_celery.py, imported by its workers (``-A celery_app``)
and by the suite itself, which enqueues. Configured from the environment that
the suite gives its workers."""

import os
import time

from celery import Celery

from headway.celery import current_job, install

app = Celery("headway_test", broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/11"))
app.conf.update(
    task_default_queue=os.environ.get("HEADWAY_TEST_QUEUE", "headway-test"),
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
headway = install(
    app,
    owner=lambda args, kwargs: kwargs.get("user") or os.environ.get("HEADWAY_TEST_USER"),
    lease_timeout=float(os.environ.get("HEADWAY_LEASE_TIMEOUT", "30")),
    lease_key=os.environ.get("HEADWAY_LEASE_KEY", "headway:leases"),
    progress_interval=0.05,
    control_wait=5,
    close_timeout=2,
)


class Transient(Exception):
    """An error worth a retry."""

    retryable = True
    code = "UPSTREAM_DOWN"


@app.task(headway={"name": "work", "kind": "test", "stages": ["one", "two"]})
def work(steps=3, pause=0.02, result=None, user=None):
    job = current_job()
    job.stage("one")
    for step in range(1, steps + 1):
        job.sleep(pause)
        job.progress(current=step, total=steps, unit="steps")
    job.stage("two")
    job.log("done")
    return result


@app.task
def boom(message="broken", user=None):
    current_job().log("about to fail")
    raise ValueError(message)


@app.task(bind=True, max_retries=2, headway={"name": "flaky"})
def flaky(self, fail_times=1, user=None):
    job = current_job()
    job.progress(percent=50)
    if self.request.retries < fail_times:
        raise self.retry(exc=Transient(f"attempt {self.request.retries + 1} failed"), countdown=0)
    return {"attempt": self.request.retries + 1}


@app.task(headway={"name": "sleeper"})
def sleeper(seconds=30, user=None):
    """Waits through checkpoints: a cancel or pause arrives while it waits."""
    job = current_job()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job.sleep(0.2)
        job.progress(percent=min(100, 100 * (1 - (deadline - time.monotonic()) / seconds)))
    return "slept"


@app.task(headway={"name": "busy"})
def busy(seconds=30, user=None):
    """Never reaches a checkpoint: stopped only from outside its process."""
    current_job().log(f"busy in pid {os.getpid()}")
    time.sleep(seconds)
