"""headway.celery against real Celery workers (prefork and threads pools), the
machine's Redis and a real hub. Run by packages/server/test/python-celery.test.ts."""

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
    import celery  # noqa: F401
    import redis
except ImportError as err:  # pragma: no cover - the TypeScript runner fails in CI when this skips
    MISSING = f"Celery or redis-py is not installed for {sys.executable}: {err}"
else:
    MISSING = ""

RUN = uuid.uuid4().hex[:10]
BROKER = f"{REDIS_URL}/11"
LEASE_KEY = f"headway:test-leases:{RUN}"
LEASE_TIMEOUT = 2.0
QUEUES = {"threads": f"hw-threads-{RUN}", "prefork": f"hw-prefork-{RUN}"}
ENV = dict(
    CELERY_BROKER_URL=BROKER,
    HEADWAY_LEASE_KEY=LEASE_KEY,
    HEADWAY_LEASE_TIMEOUT=LEASE_TIMEOUT,
)
os.environ.update({k: str(v) for k, v in ENV.items()})

workers = {}


def start_worker(pool, queue, concurrency, wait=True):
    worker = Process(
        [
            sys.executable, "-m", "celery", "-A", "celery_app", "worker",
            "-P", pool, "-c", str(concurrency), "-Q", queue, "-n", f"{queue}@%h",
            "--without-mingle", "--without-gossip", "--without-heartbeat", "--loglevel=INFO",
        ],
        child_env(HEADWAY_TEST_QUEUE=queue),
        name=f"celery-{pool}",
    )
    if wait:
        worker.wait_output(" ready.", timeout=30)
    return worker


def setUpModule():
    if MISSING or not HAVE_HUB:
        return
    # Started side by side: each takes a second or two to be ready.
    workers["threads"] = start_worker("threads", QUEUES["threads"], 4, wait=False)
    workers["prefork"] = start_worker("prefork", QUEUES["prefork"], 2, wait=False)
    for worker in workers.values():
        worker.wait_output(" ready.", timeout=30)


def tearDownModule():
    for worker in workers.values():
        worker.kill(signal.SIGTERM)
    for worker in workers.values():
        worker.stopped()
    if not MISSING and HAVE_HUB:
        delete_unfinished(USER)
        r = redis.Redis.from_url(BROKER)
        delete_redis_keys(r, f"*{RUN}*")
        r.close()


@unittest.skipIf(MISSING, MISSING)
@unittest.skipUnless(HAVE_HUB, NEEDS_HUB)
class CeleryTest(unittest.TestCase):
    def setUp(self):
        import celery_app

        self.app = celery_app
        self.headway = celery_app.headway

    def enqueue(self, task, pool, **kwargs):
        return self.headway.apply_async(task, (), kwargs, queue=QUEUES[pool])

    def worker_output(self):
        return "\n".join(f"--- {k}:\n{w.output()[-2000:]}" for k, w in workers.items())

    # -- lifecycle -------------------------------------------------------------------

    def test_a_task_run_is_a_job_that_completes_with_its_result(self):
        for pool in ("threads", "prefork"):
            with self.subTest(pool=pool):
                task_id = self.enqueue(self.app.work, pool, steps=3, result={"pool": pool}).id
                queued = state_of(task_id)
                self.assertIsNotNone(queued, "the job exists when apply_async returns")
                self.assertEqual((queued["owner"], queued["name"]), (USER, "work"))
                state = wait_status(task_id, "completed")
                self.assertEqual(state["result"], {"pool": pool})
                self.assertEqual(state["metadata"]["kind"], "test")
                self.assertEqual(
                    state["metadata"]["celery"], {"task": "celery_app.work", "id": task_id, "attempt": 1}
                )
                kinds = kinds_of(task_id)
                self.assertEqual(kinds[:3], ["created", "metadata", "stage"])
                self.assertEqual(kinds[-3:], ["stage", "log", "completed"])
                self.assertEqual([e["data"]["current"] for e in events_of(task_id) if e["kind"] == "progress"][-1], 3)

    def test_an_exception_fails_the_job(self):
        for pool in ("threads", "prefork"):
            with self.subTest(pool=pool):
                task_id = self.enqueue(self.app.boom, pool, message="no codec").id
                state = wait_status(task_id, "failed")
                self.assertEqual(state["error"]["code"], "ValueError")
                self.assertEqual(state["error"]["message"], "no codec")
                self.assertFalse(state["error"]["retryable"])

    def test_a_retry_is_a_new_job_that_names_the_attempt_before(self):
        task_id = self.enqueue(self.app.flaky, "threads", fail_times=1).id
        second = wait_status(f"{task_id}:attempt-2", "completed")
        first = state_of(task_id)
        self.assertEqual(first["status"], "failed")
        self.assertEqual(first["error"]["code"], "CELERY_ATTEMPT_FAILED")
        self.assertTrue(first["error"]["retryable"])
        self.assertIn("attempt 1 failed", first["error"]["message"])
        self.assertEqual(second["metadata"]["retryOf"], task_id)
        self.assertEqual(second["metadata"]["attempt"], 2)
        self.assertEqual((second["owner"], second["name"]), (USER, "flaky"))
        self.assertEqual(second["result"], {"attempt": 2})

    # -- control from the browser ---------------------------------------------------------

    def test_a_cancel_from_the_browser_ends_the_task_within_a_second(self):
        for pool in ("threads", "prefork"):
            with self.subTest(pool=pool):
                task_id = self.enqueue(self.app.sleeper, pool, seconds=30).id
                wait_status(task_id, "running")
                asked = time.monotonic()
                control(task_id, "cancel")
                wait_status(task_id, "cancelled", timeout=5)
                self.assertLess(time.monotonic() - asked, 1.0)
                self.assertEqual(kinds_of(task_id)[-2:], ["cancel_requested", "cancelled"])

    def test_a_pause_holds_the_task_until_a_resume(self):
        task_id = self.enqueue(self.app.sleeper, "prefork", seconds=1.0).id
        wait_status(task_id, "running")
        asked = time.monotonic()
        control(task_id, "pause")
        wait_status(task_id, "paused", timeout=5)
        self.assertLess(time.monotonic() - asked, 1.0)
        time.sleep(0.5)
        self.assertEqual(state_of(task_id)["status"], "paused")
        control(task_id, "resume")
        state = wait_status(task_id, "completed")
        self.assertEqual(state["result"], "slept")
        kinds = kinds_of(task_id)
        self.assertLess(kinds.index("paused"), kinds.index("resumed"))

    # -- revoke -----------------------------------------------------------------------------

    def test_a_task_revoked_before_it_runs_is_cancelled(self):
        task_id = str(uuid.uuid4())
        self.app.app.control.revoke(task_id)
        time.sleep(0.2)  # the broadcast reaches the workers
        self.headway.apply_async(self.app.work, (), {}, queue=QUEUES["threads"], task_id=task_id)
        wait_status(task_id, "cancelled")
        self.assertNotIn("progress", kinds_of(task_id))

    def test_a_revoke_with_terminate_cancels_a_running_task(self):
        task_id = self.enqueue(self.app.busy, "prefork", seconds=30).id
        wait_for(lambda: "log" in kinds_of(task_id))
        self.app.app.control.revoke(task_id, terminate=True)
        state = wait_status(task_id, "cancelled")
        self.assertEqual(events_of(task_id)[-1]["data"].get("reason"), "revoked in Celery")
        self.assertEqual(state["status"], "cancelled")

    def test_a_revoke_reaches_a_threads_pool_task_at_its_next_checkpoint(self):
        task_id = self.enqueue(self.app.sleeper, "threads", seconds=30).id
        wait_status(task_id, "running")
        self.app.app.control.revoke(task_id)
        wait_status(task_id, "cancelled", timeout=5)
        self.assertEqual(events_of(task_id)[-1]["data"].get("reason"), "revoked in Celery")

    # -- death ------------------------------------------------------------------------------

    def test_a_killed_pool_process_fails_its_job_as_retryable(self):
        task_id = self.enqueue(self.app.busy, "prefork", seconds=30).id
        wait_for(lambda: "log" in kinds_of(task_id))
        pids = [int(p) for p in re.findall(r"pid (\d+)", " ".join(
            e["data"].get("message", "") for e in events_of(task_id) if e["kind"] == "log"))]
        self.assertTrue(pids, events_of(task_id))
        os.kill(pids[0], signal.SIGKILL)
        state = wait_status(task_id, "failed")
        self.assertEqual(state["error"]["code"], "WORKER_LOST")
        self.assertTrue(state["error"]["retryable"])

    def test_the_job_of_a_worker_killed_outright_fails_after_the_lease_timeout(self):
        queue = f"hw-doomed-{RUN}"
        doomed = start_worker("threads", queue, 1)
        self.addCleanup(doomed.stop)
        task_id = self.headway.apply_async(self.app.busy, (), {"seconds": 30}, queue=queue).id
        wait_for(lambda: "log" in kinds_of(task_id))
        doomed.kill(signal.SIGKILL)
        killed = time.monotonic()
        # The lease expires after LEASE_TIMEOUT; a live worker's reaper looks every LEASE_TIMEOUT / 2.
        state = wait_status(task_id, "failed", timeout=LEASE_TIMEOUT * 3 + 5)
        self.assertGreaterEqual(time.monotonic() - killed, LEASE_TIMEOUT * 0.5)
        self.assertEqual(state["error"]["code"], "WORKER_LOST")
        self.assertTrue(state["error"]["retryable"])
        r = redis.Redis.from_url(BROKER)
        self.addCleanup(r.close)
        self.assertIsNone(r.zscore(LEASE_KEY, task_id))


if __name__ == "__main__":
    unittest.main()
