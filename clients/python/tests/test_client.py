"""Tests of the Python client against a real hub.

Run by packages/server/test/python-client.test.ts, which starts a hub and sets
HEADWAY_URL, HEADWAY_API_KEY, HEADWAY_TEST_USER and HEADWAY_TEST_TOKEN (a
browser token of that user, for cancel, pause and resume requests). By hand:

    HEADWAY_URL=... HEADWAY_API_KEY=... HEADWAY_TEST_USER=alice HEADWAY_TEST_TOKEN=... \
        python3 -m unittest discover -v -s clients/python/tests -t clients/python
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request
import uuid
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import headway  # noqa: E402
from headway import ConfigError, Headway, HeadwayError, InvalidArgument, JobCancelled, JobDeleted  # noqa: E402

URL = os.environ.get("HEADWAY_URL", "")
API_KEY = os.environ.get("HEADWAY_API_KEY", "")
USER = os.environ.get("HEADWAY_TEST_USER", "")
TOKEN = os.environ.get("HEADWAY_TEST_TOKEN", "")
HAVE_HUB = bool(URL and API_KEY and USER and TOKEN)
NEEDS_HUB = "needs HEADWAY_URL, HEADWAY_API_KEY, HEADWAY_TEST_USER and HEADWAY_TEST_TOKEN"

# Generous bound for waits on things that happen in milliseconds.
WAIT = 10.0


def rest(method, path, body=None, credential=None, base=None):
    """One request straight to the hub (not through the client under test)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request((base or URL) + path, data=data, method=method)
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
    status, body = rest("GET", f"/v1/jobs/{job_id}")
    assert status == 200, (status, body)
    return body


def events_of(job_id):
    status, body = rest("GET", f"/v1/jobs/{job_id}/events?since=0&limit=1000")
    assert status == 200, (status, body)
    return body["events"]


def kinds_of(job_id):
    return [e["kind"] for e in events_of(job_id)]


def wait_for(predicate, timeout=WAIT, interval=0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def unique(prefix):
    return f"py-{prefix}-{uuid.uuid4().hex[:12]}"


def headway_threads():
    return [t for t in threading.enumerate() if t.name.startswith("headway-")]


class InThread:
    """Run a function in a thread; `join()` re-raises what it raised."""

    def __init__(self, fn):
        self.error = None
        self.result = None

        def run():
            try:
                self.result = fn()
            except BaseException as err:  # noqa: BLE001 - re-raised in join()
                self.error = err

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self):
        self.thread.join(WAIT * 3)
        if self.thread.is_alive():
            raise AssertionError("helper thread did not finish")
        if self.error is not None:
            raise self.error
        return self.result


class FaultyProxy:
    """A small HTTP proxy in front of the hub. `drop[(method, path)] = n` forwards
    the next n such requests and then closes the connection without an answer (the
    hub applied them; the client never hears). `fail[(method, path)] = (n, status,
    headers)` answers the next n with that status without forwarding."""

    def __init__(self, target):
        self.target = target
        self.drop = {}
        self.fail = {}
        self.seen = []  # (monotonic time, method, path, body)
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                proxy.handle(self)

            def do_POST(self):
                proxy.handle(self)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def handle(self, handler):
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        route = (handler.command, handler.path.split("?")[0])
        with self.lock:
            self.seen.append((time.monotonic(), handler.command, handler.path, body))
            failure = self.fail.get(route)
            if failure and failure[0] > 0:
                self.fail[route] = (failure[0] - 1,) + failure[1:]
            else:
                failure = None
            dropping = self.drop.get(route, 0) > 0
            if dropping and failure is None:
                self.drop[route] -= 1
        if failure is not None:
            _, status, headers = failure
            payload = json.dumps({"error": {"code": "HW_ERR_STORE_UNAVAILABLE", "message": "injected"}}).encode()
            handler.send_response(status)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            return
        request = urllib.request.Request(self.target + handler.path, data=body, method=handler.command)
        for name in ("Authorization", "Content-Type"):
            if handler.headers.get(name):
                request.add_header(name, handler.headers[name])
        try:
            with urllib.request.urlopen(request, timeout=90) as response:
                status, data = response.status, response.read()
        except urllib.error.HTTPError as err:
            status, data = err.code, err.read()
        if dropping:
            handler.close_connection = True
            return
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def requests(self, method, path):
        with self.lock:
            return [s for s in self.seen if s[1] == method and s[2].split("?")[0] == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


class SettingsTest(unittest.TestCase):
    """Configuration errors name the missing setting; no hub needed."""

    def test_missing_url_names_the_setting(self):
        with mock.patch.dict(os.environ, {"HEADWAY_API_KEY": "k"}, clear=True):
            with self.assertRaises(ConfigError) as caught:
                Headway()
        self.assertEqual(caught.exception.code, "HW_WORKER_INVALID_OPTION")
        self.assertEqual((caught.exception.option, caught.exception.setting), ("url", "HEADWAY_URL"))
        self.assertIsInstance(caught.exception, ValueError)

    def test_missing_api_key_names_the_setting(self):
        with mock.patch.dict(os.environ, {"HEADWAY_URL": "http://127.0.0.1:9"}, clear=True):
            with self.assertRaises(ConfigError) as caught:
                Headway()
        self.assertEqual(caught.exception.code, "HW_WORKER_INVALID_OPTION")
        self.assertEqual((caught.exception.option, caught.exception.setting), ("api_key", "HEADWAY_API_KEY"))

    def test_arguments_override_the_environment(self):
        with mock.patch.dict(os.environ, {}, clear=True):
            client = Headway("http://127.0.0.1:9/prefix/", "key")
            self.addCleanup(client.close)
        self.assertEqual(client.url, "http://127.0.0.1:9/prefix")

    def test_invalid_options(self):
        with self.assertRaises(ConfigError) as caught:
            Headway("ftp://example.com", "key")
        self.assertEqual((caught.exception.code, caught.exception.option), ("HW_WORKER_INVALID_OPTION", "url"))
        for option, value in (("max_queue", 0), ("progress_interval", -1), ("max_batch_events", 5000)):
            with self.assertRaises(ConfigError) as caught:
                Headway("http://127.0.0.1:9", "key", **{option: value})
            self.assertEqual((caught.exception.code, caught.exception.option), ("HW_WORKER_INVALID_OPTION", option))
        with self.assertRaises(TypeError):
            Headway("http://127.0.0.1:9", "key", progress_intervall=1)

    def test_unreachable_hub_gives_up_with_a_code(self):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        # Nothing listens on the port now: every attempt is refused at once.
        client = Headway(f"http://127.0.0.1:{port}", "key", max_attempts=3, min_backoff=0.01)
        self.addCleanup(client.close)
        with self.assertRaises(HeadwayError) as caught:
            client.create_job("someone")
        self.assertEqual(caught.exception.code, "HW_WORKER_UNREACHABLE")

    def test_module_imports_without_site_packages(self):
        # -I -S: no site-packages, no user paths, no environment: the standard library only.
        here = os.path.dirname(os.path.dirname(os.path.abspath(headway.__file__)))
        code = "import sys; sys.path.insert(0, %r); import headway; print(headway.__version__)" % here
        done = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", code], capture_output=True, text=True)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.strip(), headway.__version__)


def delete_unfinished(owner):
    """Delete the owner's jobs that are still queued, running or paused, so that a
    run of the suite leaves no job that looks alive on the hub (a test's jobs are
    the user's only ones while it runs)."""
    status, body = rest("GET", f"/v1/jobs?owner={owner}&status=queued,running,paused&limit=500")
    assert status == 200, (status, body)
    for job in body["jobs"]:
        if job.get("parent") is None:
            rest("DELETE", f"/v1/jobs/{job['id']}")
    status, body = rest("GET", f"/v1/jobs?owner={owner}&status=queued,running,paused&limit=500")
    for job in body["jobs"]:
        rest("DELETE", f"/v1/jobs/{job['id']}")


@unittest.skipUnless(HAVE_HUB, NEEDS_HUB)
class HubTest(unittest.TestCase):
    def setUp(self):
        # Registered first, so it runs last: after every client of the test closed.
        self.addCleanup(delete_unfinished, USER)
        self.hw = Headway()
        self.addCleanup(self.hw.close)

    def control(self, job_id, action):
        """Ask for a cancel, pause or resume as the job's owner would from a browser."""
        status, body = rest("POST", f"/v1/jobs/{job_id}/{action}", {}, credential=TOKEN)
        self.assertEqual(status, 200, body)
        return body


class ReportingTest(HubTest):
    def test_create_stages_progress_complete_end_to_end(self):
        job_id = unique("e2e")
        job = self.hw.create_job(
            USER,
            name="Transcode lecture.mp4",
            stages=[("download", 1), {"name": "transcode", "weight": 3}],
            metadata={"source": "s3://bucket/lecture.mp4"},
            id=job_id,
        )
        self.assertEqual((job.id, job.owner, job.status), (job_id, USER, "queued"))
        job.stage("download", message="fetching")
        job.progress(current=50, total=100, unit="bytes")
        job.stage("transcode")
        job.progress(percent=50, message="halfway")
        job.log("encoder warmed up", level="warning")
        job.metadata(codec="h264")
        job.flush()
        running = state_of(job_id)
        self.assertEqual(running["status"], "running")
        # download (weight 1) done, transcode (weight 3) half done: (1 + 1.5) / 4.
        self.assertEqual(running["progress"]["percent"], 62.5)
        self.assertEqual(running["stage"]["name"], "transcode")
        job.complete({"url": "https://cdn.example/lecture.m3u8"})

        state = state_of(job_id)
        self.assertEqual(state["status"], "completed")
        self.assertEqual(state["progress"]["percent"], 100)
        self.assertEqual(state["result"], {"url": "https://cdn.example/lecture.m3u8"})
        self.assertEqual(state["metadata"], {"source": "s3://bucket/lecture.mp4", "codec": "h264"})
        self.assertEqual([s["weight"] for s in state["stages"]], [1, 3])
        events = events_of(job_id)
        self.assertEqual(
            [e["kind"] for e in events],
            ["created", "stage", "progress", "stage", "progress", "log", "metadata", "completed"],
        )
        self.assertEqual([e["seq"] for e in events], list(range(1, 9)))
        self.assertEqual(events[2]["data"], {"current": 50, "total": 100, "unit": "bytes", "percent": 50})
        self.assertEqual(events[5]["data"], {"message": "encoder warmed up", "level": "warn"})
        self.assertEqual(job.status, "completed")
        self.assertTrue(job.ended)
        job.progress(percent=10)  # the job has ended: ignored
        job.complete()  # so is a second end
        self.assertEqual(kinds_of(job_id)[-1], "completed")
        self.assertEqual(self.hw.stats()["open_jobs"], 0)

    def test_progress_is_throttled_and_the_last_report_kept(self):
        job = self.hw.create_job(USER, name="throttled")
        started = time.monotonic()
        for i in range(1, 2001):
            job.progress(percent=i * 0.045, message="step %d" % (i // 500))
        elapsed = time.monotonic() - started
        job.flush()
        progress = [e for e in events_of(job.id) if e["kind"] == "progress"]
        # At most one event per 0.25 s, plus the first and the flushed last one.
        self.assertLessEqual(len(progress), 2 + int(elapsed / 0.25) + 1)
        self.assertLess(len(progress), 2000 // 10)
        self.assertEqual(progress[-1]["data"], {"percent": 2000 * 0.045, "message": "step 4"})
        self.assertEqual(state_of(job.id)["progress"]["percent"], 90)

    def test_only_meaningful_changes_are_sent(self):
        job = self.hw.create_job(USER, name="meaningful")
        job.progress(percent=50)
        for _ in range(100):
            job.progress(percent=50.05)  # under progress_min_delta: the hub already shows this
        job.flush()
        self.assertEqual(kinds_of(job.id).count("progress"), 1)
        job.progress(percent=50.05, message="new message")  # a new message always counts
        job.flush()
        job.progress(current=5, total=10, unit="files")  # so does a new unit
        job.flush()
        job.progress(current=5, total=10, unit="files")  # an exact repeat does not
        job.progress(current=5)  # nor the same count against the same total
        job.flush()
        progress = [e["data"] for e in events_of(job.id) if e["kind"] == "progress"]
        self.assertEqual(len(progress), 3)
        self.assertEqual(progress[1]["message"], "new message")
        self.assertEqual((progress[2]["current"], progress[2]["total"], progress[2]["unit"]), (5, 10, "files"))

    def test_coalesced_reports_keep_what_the_hub_would_keep(self):
        job = self.hw.create_job(USER, name="coalesced")
        job.progress(percent=1)
        # Within one throttle interval: only the newest report is sent, carrying the
        # message, total and unit of the earlier ones that it leaves out.
        job.progress(current=10, total=200, unit="frames", message="decoding")
        job.progress(current=20)
        job.flush()
        events = [e["data"] for e in events_of(job.id) if e["kind"] == "progress"]
        self.assertEqual(len(events), 2)
        state = state_of(job.id)
        self.assertEqual(state["message"], "decoding")
        self.assertEqual(state["progress"]["percent"], 10)
        self.assertEqual((state["progress"]["total"], state["progress"]["unit"]), (200, "frames"))

    def test_last_progress_before_a_terminal_event_is_not_lost(self):
        job = self.hw.create_job(USER, name="last progress")
        job.progress(percent=10)
        job.progress(percent=20)  # within the throttle interval: held back
        job.progress(percent=30)
        job.log("between")  # goes after the held-back progress: events keep the order of reports
        job.progress(percent=40)
        job.complete()
        events = events_of(job.id)
        self.assertEqual(
            [e["kind"] for e in events], ["created", "progress", "progress", "log", "progress", "completed"]
        )
        self.assertEqual([e["data"].get("percent") for e in events[1:5]], [10, 30, None, 40])

    def test_fail_with_retryable_error(self):
        job = self.hw.create_job(USER, name="fails", stages=["fetch", "process"])
        job.stage("fetch")
        job.fail("upstream timed out", code="UPSTREAM_TIMEOUT", retryable=True)
        state = state_of(job.id)
        self.assertEqual(state["status"], "failed")
        self.assertEqual(
            state["error"],
            {"code": "UPSTREAM_TIMEOUT", "message": "upstream timed out", "retryable": True, "stage": "fetch"},
        )

    def test_fail_with_an_exception_and_default_code(self):
        job = self.hw.create_job(USER, name="fails with exception")
        job.fail(OSError("disk full"))
        self.assertEqual(
            state_of(job.id)["error"],
            {"code": "OSError", "message": "disk full", "retryable": False, "stage": None},
        )
        other = self.hw.create_job(USER, name="fails with text")
        other.fail("no code given")
        self.assertEqual(state_of(other.id)["error"]["code"], "FAILED")

    def test_invalid_reports_raise_before_they_are_queued(self):
        job = self.hw.create_job(USER, name="invalid", stages=["a", "b"])
        cases = [
            (lambda: job.progress(percent=101), "HW_ERR_INVALID_VALUE"),
            (lambda: job.progress(percent=float("nan")), "HW_ERR_INVALID_VALUE"),
            (lambda: job.progress(current=11, total=10), "HW_ERR_INVALID_VALUE"),
            (lambda: job.progress(message="no numbers"), "HW_ERR_INVALID_VALUE"),
            (lambda: job.stage("c"), "HW_ERR_INVALID_VALUE"),
            (lambda: job.log("x", level="loud"), "HW_ERR_INVALID_MESSAGE"),
            (lambda: job.metadata({"when": object()}), "HW_ERR_INVALID_VALUE"),
            (lambda: job.complete({"nan": float("nan")}), "HW_ERR_INVALID_VALUE"),
            (lambda: self.hw.job("not a valid id"), "HW_ERR_INVALID_MESSAGE"),
            (lambda: self.hw.create_job(USER, stages=[("a", 0)]), "HW_ERR_INVALID_VALUE"),
        ]
        for call, code in cases:
            with self.assertRaises(InvalidArgument) as caught:
                call()
            self.assertEqual(caught.exception.code, code)
        job.flush()
        self.assertEqual(kinds_of(job.id), ["created"])
        # A long log line is cut to the hub's limit rather than refused.
        job.log("x" * 10_000)
        job.complete()
        log = [e for e in events_of(job.id) if e["kind"] == "log"][0]
        self.assertEqual(len(log["data"]["message"]), 4096)

    def test_a_refused_end_raises_and_the_job_can_still_end(self):
        job = self.hw.create_job(USER, name="big result")
        with self.assertRaises(HeadwayError) as caught:
            job.complete({"blob": "x" * 20_000})  # over the hub's 16 KiB result limit
        self.assertEqual(caught.exception.code, "HW_ERR_PAYLOAD_TOO_LARGE")
        self.assertEqual(caught.exception.status, None)  # a per-job result, not an HTTP error
        job.complete({"blob": "small"})
        self.assertEqual(state_of(job.id)["result"], {"blob": "small"})

    def test_one_refused_event_does_not_take_its_neighbours_down(self):
        job = self.hw.create_job(USER, name="neighbours")
        job.log("before")
        job._client._lock.acquire()
        try:
            # Queue three events at once so that they travel in one request:
            # `resumed` is refused (the job is not paused), the others are stored.
            job._enqueue("log", {"message": "first"})
            job._enqueue("resumed", {})
            job._enqueue("log", {"message": "third"})
        finally:
            job._client._lock.release()
        with self.assertLogs("headway", "WARNING") as logged:
            job.flush()
        self.assertIn("resumed", logged.output[0])
        self.assertEqual(job.last_error.code, "HW_ERR_INVALID_TRANSITION")
        messages = [e["data"]["message"] for e in events_of(job.id) if e["kind"] == "log"]
        self.assertEqual(messages, ["before", "first", "third"])

    def test_attach_to_an_existing_job(self):
        job = self.hw.create_job(USER, name="attach", stages=["one"])
        with Headway() as other:
            same = other.job(job.id)
            self.assertEqual((same.id, same.owner, same.name), (job.id, USER, "attach"))
            self.assertIs(other.job(job.id), same)
            same.stage("one")
            same.complete()
        self.assertEqual(state_of(job.id)["status"], "completed")
        with self.assertRaises(HeadwayError) as caught:
            self.hw.job(unique("missing"))
        self.assertEqual(caught.exception.code, "HW_ERR_NOT_FOUND")
        self.assertEqual(caught.exception.status, 404)

    def test_child_jobs_roll_up_into_their_batch(self):
        with self.hw.create_job(USER, name="batch") as batch:
            # Children are created up front: the batch ends when all of its children have.
            children = [batch.child(name=name) for name in ("a", "b")]
            for child in children:
                with child:
                    child.progress(percent=100)
        # The batch ended on its own with its last child; leaving its block reported nothing more.
        parent = state_of(batch.id)
        self.assertEqual(parent["status"], "completed")
        self.assertEqual(parent["children"]["total"], 2)
        self.assertEqual(parent["children"]["completed"], 2)
        self.assertEqual(kinds_of(batch.id).count("completed"), 1)
        listed = rest("GET", f"/v1/jobs?parent={batch.id}")[1]["jobs"]
        self.assertEqual(sorted(c["id"] for c in listed), sorted(c.id for c in children))
        self.assertEqual({c["owner"] for c in listed}, {USER})


class ContextManagerTest(HubTest):
    def test_normal_exit_completes(self):
        with self.hw.create_job(USER, name="ok") as job:
            job.progress(percent=40)
        self.assertEqual(state_of(job.id)["status"], "completed")
        self.assertEqual(kinds_of(job.id), ["created", "progress", "completed"])

    def test_an_end_reported_in_the_block_is_not_repeated(self):
        with self.hw.create_job(USER, name="explicit") as job:
            job.complete({"n": 1})
        self.assertEqual(kinds_of(job.id), ["created", "completed"])
        self.assertEqual(state_of(job.id)["result"], {"n": 1})

    def test_exception_fails_and_propagates(self):
        with self.assertRaises(ValueError):
            with self.hw.create_job(USER, name="boom") as job:
                job.stage("parse")
                raise ValueError("bad frame 12")
        state = state_of(job.id)
        self.assertEqual(state["status"], "failed")
        self.assertEqual(
            state["error"], {"code": "ValueError", "message": "bad frame 12", "retryable": False, "stage": "parse"}
        )

    def test_exception_with_code_and_retryable_attributes(self):
        class UpstreamDown(Exception):
            code = "UPSTREAM_DOWN"
            retryable = True

        with self.assertRaises(UpstreamDown):
            with self.hw.create_job(USER, name="transient") as job:
                raise UpstreamDown("503 from origin")
        error = state_of(job.id)["error"]
        self.assertEqual((error["code"], error["retryable"]), ("UPSTREAM_DOWN", True))

    def test_interrupt_fails_retryable(self):
        with self.assertRaises(KeyboardInterrupt):
            with self.hw.create_job(USER, name="interrupted") as job:
                raise KeyboardInterrupt
        error = state_of(job.id)["error"]
        self.assertEqual((error["code"], error["retryable"]), ("INTERRUPTED", True))

    def test_job_cancelled_raised_by_the_worker_reports_cancelled(self):
        with self.assertRaises(JobCancelled):
            with self.hw.create_job(USER, name="gave up") as job:
                job.progress(percent=5)
                raise JobCancelled(job.id, "input disappeared")
        events = events_of(job.id)
        self.assertEqual(events[-1]["kind"], "cancelled")
        self.assertEqual(events[-1]["data"], {"reason": "input disappeared"})


class ControlTest(HubTest):
    def test_cancel_reaches_a_busy_worker_within_a_second(self):
        job = self.hw.create_job(USER, name="busy")
        acknowledged = {}
        heard = []
        job.on_control(lambda control, handle: heard.append((dict(control), handle)))

        def request_cancel():
            time.sleep(0.2)  # the worker is already busy and silent
            body = self.control(job.id, "cancel")
            acknowledged["at"] = time.monotonic()
            return body

        with self.assertRaises(JobCancelled):
            with job:
                job.progress(percent=1)
                job.flush()
                helper = InThread(request_cancel)
                # Busy work that reports nothing: only the control watcher can tell.
                self.assertTrue(wait_for(lambda: job.cancelled, interval=0.001))
                seen = time.monotonic()
                helper.join()
                self.assertLess(seen - acknowledged["at"], 1.0)
                job.check()
        self.assertEqual(heard, [({"cancelRequested": True, "paused": False}, job)])
        events = events_of(job.id)
        self.assertEqual([e["kind"] for e in events], ["created", "progress", "cancel_requested", "cancelled"])
        self.assertEqual(events[2]["data"]["by"], USER)
        self.assertEqual(state_of(job.id)["status"], "cancelled")

    def test_pause_blocks_check_until_resume(self):
        job = self.hw.create_job(USER, name="pausable")
        job.progress(percent=10)
        job.flush()
        observed = {}

        def pause_then_resume():
            self.control(job.id, "pause")
            # Wait for the worker's acknowledgement, then resume.
            seq = 0
            while True:
                status, state = rest("GET", f"/v1/jobs/{job.id}?since={seq}&wait=5")
                assert status == 200, state
                if state["status"] == "paused":
                    break
                seq = state["seq"]
            observed["status"] = state["status"]
            self.control(job.id, "resume")

        helper = InThread(pause_then_resume)
        self.assertTrue(wait_for(lambda: job.paused))
        job.check()  # reports `paused`, blocks, reports `resumed`
        helper.join()
        self.assertEqual(observed["status"], "paused")
        self.assertFalse(job.paused)
        job.progress(percent=60)
        job.complete()
        self.assertEqual(
            kinds_of(job.id),
            [
                "created",
                "progress",
                "pause_requested",
                "paused",
                "resume_requested",
                "resumed",
                "progress",
                "completed",
            ],
        )

    def test_cancel_while_paused_raises(self):
        job = self.hw.create_job(USER, name="paused then cancelled")
        job.progress(percent=10)
        job.flush()
        self.control(job.id, "pause")
        self.assertTrue(wait_for(lambda: job.paused))

        def cancel_once_paused():
            self.assertTrue(wait_for(lambda: state_of(job.id)["status"] == "paused", interval=0.02))
            self.control(job.id, "cancel")

        helper = InThread(cancel_once_paused)
        with self.assertRaises(JobCancelled):
            with job:
                job.check()
        helper.join()
        self.assertEqual(kinds_of(job.id)[-3:], ["paused", "cancel_requested", "cancelled"])

    def test_an_end_sets_the_status_without_a_watcher(self):
        with Headway(watch_control=False) as quiet:
            ends = (
                (lambda j: j.complete({"ok": True}), "completed"),
                (lambda j: j.fail(RuntimeError("broken")), "failed"),
                (lambda j: j.cancel("not needed"), "cancelled"),
            )
            for end, status in ends:
                job = quiet.create_job(USER, name=f"ends {status}, no watcher")
                job.progress(percent=40)
                end(job)
                self.assertEqual((job.status, job.ended), (status, True))
                self.assertEqual(state_of(job.id)["status"], status)

    def test_control_without_watcher_arrives_with_report_replies(self):
        with Headway(watch_control=False) as quiet:
            job = quiet.create_job(USER, name="no watcher")
            job.progress(percent=10)
            job.flush()
            self.control(job.id, "cancel")
            self.assertFalse(job.cancelled)  # nothing polls
            job.log("still working")
            job.flush()
            self.assertTrue(job.cancelled)  # learnt from the reply
            job.cancel("acknowledged")
        self.assertEqual(state_of(job.id)["status"], "cancelled")

    def test_pause_without_watcher_polls_while_paused(self):
        with Headway(watch_control=False) as quiet:
            job = quiet.create_job(USER, name="paused, no watcher")
            job.progress(percent=10)
            job.flush()
            self.control(job.id, "pause")
            job.log("learns of the pause from the answer")
            job.flush()
            self.assertTrue(job.paused)

            def resume_once_paused():
                self.assertTrue(wait_for(lambda: state_of(job.id)["status"] == "paused", interval=0.02))
                self.control(job.id, "resume")

            helper = InThread(resume_once_paused)
            job.check()  # reports `paused`, long-polls from this thread, reports `resumed`
            helper.join()
            job.complete()
        self.assertEqual(
            kinds_of(job.id),
            ["created", "progress", "pause_requested", "log", "paused", "resume_requested", "resumed", "completed"],
        )

    def test_a_deleted_job_stops_the_worker(self):
        job = self.hw.create_job(USER, name="deleted")
        job.progress(percent=10)
        job.flush()
        status, _ = rest("DELETE", f"/v1/jobs/{job.id}")
        self.assertEqual(status, 204)
        with self.assertRaises(JobDeleted):
            with job:
                self.assertTrue(wait_for(lambda: job.cancelled))
                job.check()
        job.progress(percent=20)  # dropped quietly: nobody can see it
        self.assertIsInstance(JobDeleted(job.id), JobCancelled)

    def test_a_queued_job_cancelled_at_the_hub_is_not_reported_again(self):
        with self.assertRaises(JobCancelled):
            with self.hw.create_job(USER, name="never started") as job:
                self.control(job.id, "cancel")  # a queued job is cancelled at once
                self.assertTrue(wait_for(lambda: job.cancelled))
                job.check()
        self.assertEqual(kinds_of(job.id), ["created", "cancelled"])
        self.assertTrue(job.ended)
        job.complete()  # the job ended at the hub: nothing to report
        self.assertEqual(kinds_of(job.id), ["created", "cancelled"])


class DeliveryTest(HubTest):
    def setUp(self):
        super().setUp()
        self.proxy = FaultyProxy(URL)
        self.addCleanup(self.proxy.close)
        self.client = Headway(self.proxy.url, watch_control=False, min_backoff=0.05)
        self.addCleanup(self.client.close)

    def test_a_retried_report_is_applied_once(self):
        job = self.client.create_job(USER, name="dropped answer")
        self.proxy.drop[("POST", "/v1/events")] = 1
        job.log("exactly once")
        job.flush()
        sent = self.proxy.requests("POST", "/v1/events")
        self.assertEqual(len(sent), 2)
        self.assertEqual(sent[0][3], sent[1][3])  # the same body, with the same idempotency key
        messages = [e["data"]["message"] for e in events_of(job.id) if e["kind"] == "log"]
        self.assertEqual(messages, ["exactly once"])
        self.assertIsNone(job.last_error)

    def test_a_retried_create_is_applied_once(self):
        self.proxy.drop[("POST", "/v1/jobs")] = 1
        job = self.client.create_job(USER, name="dropped create")
        self.assertEqual(len(self.proxy.requests("POST", "/v1/jobs")), 2)
        self.assertEqual(state_of(job.id)["name"], "dropped create")
        self.assertEqual(kinds_of(job.id), ["created"])

    def test_retry_after_is_honoured(self):
        job = self.client.create_job(USER, name="retry after")
        self.proxy.fail[("POST", "/v1/events")] = (1, 503, {"Retry-After": "1"})
        job.complete()
        sent = self.proxy.requests("POST", "/v1/events")
        self.assertEqual(len(sent), 2)
        self.assertGreaterEqual(sent[1][0] - sent[0][0], 0.9)
        self.assertEqual(state_of(job.id)["status"], "completed")

    def test_an_end_not_delivered_in_time_raises_and_may_be_reported_again(self):
        client = Headway(self.proxy.url, watch_control=False, retry_timeout=0.3, min_backoff=0.05)
        self.addCleanup(client.close)
        job = client.create_job(USER, name="hub away")
        self.proxy.fail[("POST", "/v1/events")] = (10**6, 503, {})
        with self.assertRaises(HeadwayError) as caught:
            job.complete({"n": 1})
        self.assertEqual(caught.exception.code, "HW_WORKER_UNREACHABLE")
        self.assertFalse(job.ended)
        self.proxy.fail.clear()
        job.complete({"n": 2})
        self.assertEqual(state_of(job.id)["result"], {"n": 2})

    def test_close_drops_what_it_cannot_deliver(self):
        job = self.client.create_job(USER, name="dropped at close")
        self.proxy.fail[("POST", "/v1/events")] = (10**6, 503, {"Retry-After": "30"})
        job.log("never delivered")
        with self.assertLogs("headway", "WARNING"):
            self.client.close(timeout=0.3)
        self.assertEqual(self.client.stats()["dropped"], 1)
        self.assertEqual(job.last_error.code, "HW_WORKER_DROPPED")
        self.assertEqual(kinds_of(job.id), ["created"])

    def test_a_refused_request_fails_its_events(self):
        client = Headway(self.proxy.url, "not-a-key", watch_control=False)
        self.addCleanup(client.close)
        with self.assertRaises(HeadwayError) as caught:
            client.create_job(USER)
        self.assertEqual((caught.exception.code, caught.exception.status), ("HW_ERR_UNAUTHORIZED", 401))


class LifecycleTest(HubTest):
    def test_close_delivers_and_joins_every_thread(self):
        before = set(threading.enumerate())
        client = Headway()
        jobs = [client.create_job(USER, name="close %d" % i) for i in range(3)]
        for job in jobs:
            job.progress(percent=10)
            job.progress(percent=20)  # held back by the throttle: close() must send it
        started = [t for t in threading.enumerate() if t not in before and t.name.startswith("headway-")]
        self.assertEqual(
            sorted(t.name for t in started),
            sorted(["headway-sender"] + ["headway-control-" + j.id for j in jobs]),
        )
        self.assertTrue(all(t.daemon for t in started))
        client.close()
        self.assertEqual([t.name for t in started if t.is_alive()], [])
        for job in jobs:
            self.assertEqual(state_of(job.id)["progress"]["percent"], 20)
        with self.assertRaises(HeadwayError) as caught:
            jobs[0].log("after close")
        self.assertEqual(caught.exception.code, "HW_WORKER_CLOSED")
        client.close()  # twice is fine

    def test_full_queue_drops_logs_only(self):
        client = Headway(max_queue=5, watch_control=False)
        self.addCleanup(client.close)
        job = client.create_job(USER, name="full queue")
        with self.assertLogs("headway", "WARNING"):
            with client._lock:  # hold the sender back so the queue fills
                for i in range(8):
                    job._enqueue("log", {"message": "line %d" % i})
        job.complete()
        self.assertEqual(client.stats()["dropped"], 3)
        self.assertEqual(kinds_of(job.id).count("log"), 5)


if __name__ == "__main__":
    unittest.main()
