"""headway.rq against real RQ workers (with and without a work horse), the
machine's Redis and a real hub. Run by packages/server/test/python-rq.test.ts."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
import unittest
import uuid

from support import (
    HAVE_HUB,
    NEEDS_HUB,
    REDIS_URL,
    USER,
    Process,
    child_env,
    control,
    delete_redis_keys,
    delete_unfinished,
    events_of,
    kinds_of,
    state_of,
    wait_for,
    wait_status,
)

try:
    import redis
    import rq  # noqa: F401
except ImportError as err:  # pragma: no cover - the TypeScript runner fails in CI when this skips
    MISSING = f"RQ or redis-py is not installed for {sys.executable}: {err}"
else:
    MISSING = ""

RUN = uuid.uuid4().hex[:10]
REDIS_DB = f"{REDIS_URL}/12"
LEASE_KEY = f"headway:test-leases:{RUN}"
LEASE_TIMEOUT = 2.0
QUEUES = {"HeadwayWorker": f"hw-horse-{RUN}", "HeadwaySimpleWorker": f"hw-simple-{RUN}"}
ENV = dict(HEADWAY_LEASE_KEY=LEASE_KEY, HEADWAY_LEASE_TIMEOUT=LEASE_TIMEOUT)

workers = {}
connection = None


def job_id():
    """An RQ job id with the run's mark, so that clean-up finds its keys."""
    return f"{RUN}-{uuid.uuid4().hex[:12]}"


def start_worker(cls, queue, burst=False, wait=True):
    args = [sys.executable, "-m", "rq.cli", "worker", "-w", f"headway.rq.{cls}", "--url", REDIS_DB,
            "-n", f"{queue}-{uuid.uuid4().hex[:6]}", "--logging_level", "INFO", queue]
    worker = Process(args + (["--burst"] if burst else []), child_env(**ENV), name=f"rq-{cls}")
    if wait and not burst:
        worker.wait_output("Listening on", timeout=30)
    return worker


def setUpModule():
    global connection
    if MISSING or not HAVE_HUB:
        return
    connection = redis.Redis.from_url(REDIS_DB)
    for cls, queue in QUEUES.items():
        workers[cls] = start_worker(cls, queue, wait=False)
    for worker in workers.values():
        worker.wait_output("Listening on", timeout=30)


def tearDownModule():
    for worker in workers.values():
        worker.kill(signal.SIGTERM)
    for worker in workers.values():
        worker.stopped()
    if connection is not None:
        delete_unfinished(USER)
        delete_redis_keys(connection, f"*{RUN}*")
        for registry in ("rq:queues", "rq:workers"):
            mine = [m for m in connection.smembers(registry) if RUN.encode() in m]
            if mine:
                connection.srem(registry, *mine)
        connection.close()


@unittest.skipIf(MISSING, MISSING)
@unittest.skipUnless(HAVE_HUB, NEEDS_HUB)
class RQTest(unittest.TestCase):
    def setUp(self):
        import rq_jobs
        from rq import Queue

        import headway.rq

        self.jobs = rq_jobs
        self.hrq = headway.rq
        self.queues = {cls: Queue(name, connection=connection) for cls, name in QUEUES.items()}

    def enqueue(self, cls, f, *args, **kwargs):
        return self.hrq.enqueue(self.queues[cls], f, *args, owner=USER, job_id=job_id(), **kwargs)

    def test_a_job_run_is_a_headway_job_that_completes_with_its_result(self):
        for cls in QUEUES:
            with self.subTest(worker=cls):
                rq_job = self.enqueue(cls, self.jobs.work, 3, {"worker": cls}, name="work", kind="test",
                                      stages=["one", "two"])
                queued = state_of(rq_job.id)
                self.assertEqual((queued["owner"], queued["name"]), (USER, "work"))
                state = wait_status(rq_job.id, "completed")
                self.assertEqual(state["result"], {"worker": cls})
                self.assertEqual(state["metadata"]["kind"], "test")
                self.assertEqual(state["metadata"]["rq"], {"queue": QUEUES[cls], "id": rq_job.id, "attempt": 1})
                self.assertEqual(kinds_of(rq_job.id)[-3:], ["stage", "log", "completed"])
                self.assertTrue(wait_for(lambda: rq_job.get_status(refresh=True) == "finished"))

    def test_an_exception_fails_the_job(self):
        for cls in QUEUES:
            with self.subTest(worker=cls):
                rq_job = self.enqueue(cls, self.jobs.boom, "no codec")
                state = wait_status(rq_job.id, "failed")
                self.assertEqual((state["error"]["code"], state["error"]["message"]), ("ValueError", "no codec"))
                self.assertFalse(state["error"]["retryable"])

    def test_a_retry_is_a_new_job_that_names_the_attempt_before(self):
        from rq import Retry

        rq_job = self.enqueue("HeadwayWorker", self.jobs.flaky, name="flaky", retry=Retry(max=1))
        second = wait_status(f"{rq_job.id}:attempt-2", "completed")
        first = state_of(rq_job.id)
        self.assertEqual(first["status"], "failed")
        self.assertEqual(first["error"]["code"], "RQ_ATTEMPT_FAILED")
        self.assertTrue(first["error"]["retryable"])
        self.assertEqual(second["metadata"]["retryOf"], rq_job.id)
        self.assertEqual((second["owner"], second["name"]), (USER, "flaky"))
        self.assertEqual(second["result"], {"attempt": 2})

    def test_a_cancel_from_the_browser_ends_the_job_within_a_second(self):
        for cls in QUEUES:
            with self.subTest(worker=cls):
                rq_job = self.enqueue(cls, self.jobs.sleeper, 30)
                wait_status(rq_job.id, "running")
                asked = time.monotonic()
                control(rq_job.id, "cancel")
                wait_status(rq_job.id, "cancelled", timeout=5)
                self.assertLess(time.monotonic() - asked, 1.0)
                self.assertEqual(kinds_of(rq_job.id)[-2:], ["cancel_requested", "cancelled"])

    def test_a_pause_holds_the_job_until_a_resume(self):
        rq_job = self.enqueue("HeadwayWorker", self.jobs.sleeper, 1.0)
        wait_status(rq_job.id, "running")
        asked = time.monotonic()
        control(rq_job.id, "pause")
        wait_status(rq_job.id, "paused", timeout=5)
        self.assertLess(time.monotonic() - asked, 1.0)
        time.sleep(0.5)
        self.assertEqual(state_of(rq_job.id)["status"], "paused")
        control(rq_job.id, "resume")
        self.assertEqual(wait_status(rq_job.id, "completed")["result"], "slept")

    def test_a_job_cancelled_while_queued_is_not_run(self):
        queue_name = f"hw-later-{RUN}"
        from rq import Queue

        rq_job = self.hrq.enqueue(Queue(queue_name, connection=connection), self.jobs.work, owner=USER, job_id=job_id())
        control(rq_job.id, "cancel")  # a queued job is cancelled at once
        burst = start_worker("HeadwaySimpleWorker", queue_name, burst=True)
        self.addCleanup(burst.stop)
        self.assertTrue(wait_for(lambda: burst.proc.poll() is not None))
        self.assertEqual(kinds_of(rq_job.id), ["created", "cancelled"])
        self.assertEqual(rq_job.get_status(refresh=True), "canceled")

    def test_a_job_stopped_in_rq_is_cancelled(self):
        from rq.command import send_stop_job_command

        rq_job = self.enqueue("HeadwayWorker", self.jobs.busy, 30)
        wait_for(lambda: "log" in kinds_of(rq_job.id))
        send_stop_job_command(connection, rq_job.id)
        wait_status(rq_job.id, "cancelled")
        self.assertEqual(events_of(rq_job.id)[-1]["data"].get("reason"), "stopped in RQ")

    def test_a_killed_work_horse_fails_its_job_as_retryable(self):
        rq_job = self.enqueue("HeadwayWorker", self.jobs.busy, 30)
        wait_for(lambda: "log" in kinds_of(rq_job.id))
        logs = " ".join(e["data"]["message"] for e in events_of(rq_job.id) if e["kind"] == "log")
        os.kill(int(re.search(r"pid (\d+)", logs).group(1)), signal.SIGKILL)
        state = wait_status(rq_job.id, "failed")
        self.assertEqual(state["error"]["code"], "WORKER_LOST")
        self.assertTrue(state["error"]["retryable"])

    def test_the_job_of_a_worker_killed_outright_fails_after_the_lease_timeout(self):
        queue_name = f"hw-doomed-{RUN}"
        from rq import Queue

        doomed = start_worker("HeadwaySimpleWorker", queue_name)
        self.addCleanup(doomed.stop)
        rq_job = self.hrq.enqueue(Queue(queue_name, connection=connection), self.jobs.busy, 30, owner=USER, job_id=job_id())
        wait_for(lambda: "log" in kinds_of(rq_job.id))
        doomed.kill(signal.SIGKILL)
        state = wait_status(rq_job.id, "failed", timeout=LEASE_TIMEOUT * 3 + 5)
        self.assertEqual(state["error"]["code"], "WORKER_LOST")
        self.assertTrue(state["error"]["retryable"])
        self.assertIsNone(connection.zscore(LEASE_KEY, rq_job.id))


if __name__ == "__main__":
    unittest.main()
