"""The functions test_rq.py enqueues, imported by its RQ workers."""

import os
import time

from headway.rq import current_job


def work(steps=3, result=None):
    job = current_job()
    job.stage("one")
    for step in range(1, steps + 1):
        job.sleep(0.02)
        job.progress(current=step, total=steps, unit="steps")
    job.stage("two")
    job.log("done")
    return result


def boom(message="broken"):
    current_job().log("about to fail")
    raise ValueError(message)


def flaky():
    job = current_job()
    job.progress(percent=50)
    if ":attempt-" not in job.id:
        raise ConnectionError("upstream down")
    return {"attempt": job.state["metadata"]["attempt"]}


def sleeper(seconds=30):
    job = current_job()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job.sleep(0.2)
        job.progress(percent=min(100, 100 * (1 - (deadline - time.monotonic()) / seconds)))
    return "slept"


def busy(seconds=30):
    current_job().log(f"busy in pid {os.getpid()}")
    time.sleep(seconds)
