"""What the integration suites share: the hub from the environment (as
test_client.py reads it), REST calls that bypass the client under test, waits,
worker processes, and clean-up of what a test left on the hub and in Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(HERE)
if PACKAGE_ROOT not in sys.path:
    sys.path.insert(0, PACKAGE_ROOT)

URL = os.environ.get("HEADWAY_URL", "")
API_KEY = os.environ.get("HEADWAY_API_KEY", "")
USER = os.environ.get("HEADWAY_TEST_USER", "")
TOKEN = os.environ.get("HEADWAY_TEST_TOKEN", "")
HAVE_HUB = bool(URL and API_KEY and USER and TOKEN)
NEEDS_HUB = "needs HEADWAY_URL, HEADWAY_API_KEY, HEADWAY_TEST_USER and HEADWAY_TEST_TOKEN"
#: Redis of the task queue suites; each uses its own database and names its keys uniquely.
REDIS_URL = os.environ.get("HEADWAY_TEST_REDIS", "redis://127.0.0.1:6379")
#: Generous bound for waits on things that happen in milliseconds.
WAIT = 15.0


def rest(method, path, body=None, credential=None):
    """One request straight to the hub (not through the client under test)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(URL + path, data=data, method=method)
    request.add_header("Authorization", "Bearer " + (credential or API_KEY))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as err:
        text = err.read()
        return err.code, json.loads(text) if text else None


def state_of(job_id):
    """The job's state, or None when there is no such job."""
    status, body = rest("GET", f"/v1/jobs/{job_id}")
    if status == 404:
        return None
    assert status == 200, (status, body)
    return body


def events_of(job_id):
    status, body = rest("GET", f"/v1/jobs/{job_id}/events?since=0&limit=1000")
    assert status == 200, (status, body)
    return body["events"]


def kinds_of(job_id):
    return [e["kind"] for e in events_of(job_id)]


def control(job_id, action):
    """A cancel, pause or resume as the job's owner asks for it from a browser."""
    status, body = rest("POST", f"/v1/jobs/{job_id}/{action}", {}, credential=TOKEN)
    assert status == 200, (status, body)
    return body


def wait_for(predicate, timeout=WAIT, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def wait_status(job_id, *statuses, timeout=WAIT):
    """Wait until the job exists with one of ``statuses``; returns its state (or raises)."""
    found = wait_for(lambda: _with_status(job_id, statuses), timeout)
    if not found:
        raise AssertionError(f"job {job_id} not {'/'.join(statuses)} within {timeout} s: {state_of(job_id)}")
    return found


def _with_status(job_id, statuses):
    state = state_of(job_id)
    return state if state is not None and state["status"] in statuses else None


def unique(prefix):
    return f"py-{prefix}-{uuid.uuid4().hex[:10]}"


def delete_unfinished(owner):
    """Delete the owner's jobs that are still queued, running or paused, so that a
    run leaves no job that looks alive (a suite's jobs are its user's only ones)."""
    for _ in range(2):  # parents first (their children go with them), then the rest
        status, body = rest("GET", f"/v1/jobs?owner={owner}&status=queued,running,paused&limit=500")
        assert status == 200, (status, body)
        for job in body["jobs"]:
            rest("DELETE", f"/v1/jobs/{job['id']}")


def delete_redis_keys(redis, pattern):
    """Delete the keys matching ``pattern`` (this suite's unique names only)."""
    for key in list(redis.scan_iter(match=pattern, count=1000)):
        redis.delete(key)


class Process:
    """A child process (a worker), its output kept in a file for failure reports."""

    def __init__(self, args, env, cwd=HERE, name="worker"):
        self.log_path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"{name}-{uuid.uuid4().hex[:8]}.log")
        self.log = open(self.log_path, "w+b")
        self.proc = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def output(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_output(self, text, timeout=WAIT):
        if not wait_for(lambda: text in self.output() or self.proc.poll() is not None, timeout, 0.05):
            raise AssertionError(f"{text!r} not printed within {timeout} s:\n{self.output()[-3000:]}")
        if text not in self.output():
            raise AssertionError(f"exited with {self.proc.returncode}:\n{self.output()[-3000:]}")

    def kill(self, sig=signal.SIGKILL):
        """Signal the process itself (not its children)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout=10):
        """SIGTERM (a warm shutdown), then SIGKILL for the whole group; closes the log."""
        if self.proc.poll() is None:
            self.proc.terminate()
        self.stopped(timeout)

    def stopped(self, timeout=10):
        """Wait for the end of a process sent SIGTERM, then as ``stop``."""
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # pool processes left behind
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        self.log.close()
        os.unlink(self.log_path)


def child_env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, HERE, env.get("PYTHONPATH")) if p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env
