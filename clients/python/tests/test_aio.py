"""headway.aio against a real hub: the same reports from coroutines, with
nothing blocking the event loop. Also runs the ARQ example of docs/workers.md
(ARQ is not installed here: its task is a coroutine taking ``ctx``)."""

from __future__ import annotations

import asyncio
import socket
import time
import unittest

from support import HAVE_HUB, NEEDS_HUB, USER, control, delete_unfinished, kinds_of, state_of, wait_status

from headway import HeadwayError, JobCancelled
from headway.aio import AsyncHeadway


async def import_rows(ctx, job_id, rows):
    """The ARQ task of docs/workers.md, as ARQ calls it."""
    job = await ctx["hw"].job(job_id)
    async with job:
        job.stage("import")
        for i, row in enumerate(rows, 1):
            await job.sleep(0.01)  # the work (`await save(row)`); a checkpoint too
            job.progress(current=i, total=len(rows), unit="rows")
        await job.complete({"rows": len(rows)})


@unittest.skipUnless(HAVE_HUB, NEEDS_HUB)
class AsyncTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.hw = AsyncHeadway(progress_interval=0.05, control_wait=5)

    async def asyncTearDown(self):
        await self.hw.aclose()
        await asyncio.get_running_loop().run_in_executor(None, delete_unfinished, USER)

    async def test_reports_and_the_end_from_a_coroutine(self):
        job = await self.hw.create_job(USER, name="async", stages=["fetch", "load"], kind="import")
        async with job:
            job.stage("fetch")
            job.progress(percent=50)
            job.log("half way")
            job.stage("load")
            job.metadata(rows=3)
        state = state_of(job.id)
        self.assertEqual(state["status"], "completed")
        self.assertEqual(state["metadata"], {"kind": "import", "rows": 3})
        self.assertEqual(kinds_of(job.id), ["created", "stage", "progress", "log", "stage", "metadata", "completed"])

    async def test_a_cancel_wakes_a_sleeping_job_within_a_second(self):
        job = await self.hw.create_job(USER, name="sleeps")
        job.progress(percent=1)
        await job.flush()
        loop = asyncio.get_running_loop()
        asked = []

        def cancel_soon():
            time.sleep(0.2)
            asked.append(time.monotonic())
            control(job.id, "cancel")

        helper = loop.run_in_executor(None, cancel_soon)
        with self.assertRaises(JobCancelled):
            async with job:
                await job.sleep(30)
        await helper
        self.assertLess(time.monotonic() - asked[0], 1.0)
        self.assertEqual(state_of(job.id)["status"], "cancelled")

    async def test_a_pause_is_waited_out_at_a_checkpoint(self):
        job = await self.hw.create_job(USER, name="pauses")
        job.progress(percent=1)
        await job.flush()
        control(job.id, "pause")
        deadline = time.monotonic() + 5
        while not job.paused and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

        def resume_once_paused():
            wait_status(job.id, "paused")
            control(job.id, "resume")

        helper = asyncio.get_running_loop().run_in_executor(None, resume_once_paused)
        await job.check()  # reports paused, waits, reports resumed
        await helper
        await job.complete()
        self.assertEqual(kinds_of(job.id)[-4:], ["paused", "resume_requested", "resumed", "completed"])

    async def test_the_loop_keeps_running_while_a_request_waits(self):
        # A server that accepts connections and never answers: each request waits its timeout.
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        self.addCleanup(server.close)
        silent = AsyncHeadway(f"http://127.0.0.1:{server.getsockname()[1]}", "key", request_timeout=0.5, max_attempts=1)
        ticks = 0

        async def tick():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.ensure_future(tick())
        try:
            with self.assertRaises(HeadwayError) as caught:
                await silent.create_job(USER)
        finally:
            ticker.cancel()
            await silent.aclose(timeout=0.1)
        self.assertEqual(caught.exception.code, "HW_WORKER_UNREACHABLE")
        self.assertGreater(ticks, 20)  # half a second of 10 ms ticks, less scheduling slack

    async def test_the_arq_example_reports_for_a_job_its_back_end_created(self):
        created = await self.hw.create_job(USER, name="Import contacts.csv", stages=["import"])
        await import_rows({"hw": self.hw}, created.id, ["a", "b", "c"])
        state = wait_status(created.id, "completed")
        self.assertEqual(state["result"], {"rows": 3})
        self.assertEqual(state["progress"]["current"], 3)


if __name__ == "__main__":
    unittest.main()
