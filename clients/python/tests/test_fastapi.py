"""headway.fastapi and examples/fastapi against a real hub: the token route
mints for the app's user and refuses whom the app's auth refuses; the example's
jobs run, and stop on a cancel from the browser. Also serves the example with a
real uvicorn."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import sys
import time
import unittest
import urllib.error
import urllib.request

from support import HAVE_HUB, NEEDS_HUB, URL, Process, child_env, delete_unfinished, rest, wait_status

try:
    import fastapi  # noqa: F401
    import httpx  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as err:  # pragma: no cover - the TypeScript runner fails in CI when this skips
    MISSING = f"FastAPI, uvicorn or httpx is not installed for {sys.executable}: {err}"
else:
    MISSING = ""

EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "examples", "fastapi")
USERS = ("py-fastapi-ann", "py-fastapi-bob")


def claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@unittest.skipIf(MISSING, MISSING)
@unittest.skipUnless(HAVE_HUB, NEEDS_HUB)
class FastAPITest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from fastapi.testclient import TestClient

        spec = importlib.util.spec_from_file_location("fastapi_example_app", os.path.join(EXAMPLE, "app.py"))
        cls.module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(cls.module)
        cls.client = TestClient(cls.module.app)
        cls.client.__enter__()  # runs the lifespan

    @classmethod
    def tearDownClass(cls):
        cls.client.__exit__(None, None, None)
        for user in USERS:
            delete_unfinished(user)

    def login(self, user):
        self.client.cookies.clear()
        answer = self.client.post("/login", data={"user": user}, follow_redirects=False)
        self.assertEqual(answer.status_code, 303)

    def test_the_token_route_refuses_whom_the_app_refuses(self):
        self.client.cookies.clear()
        answer = self.client.post("/api/headway/token")
        self.assertEqual(answer.status_code, 401)
        self.assertNotIn("token", answer.json())
        self.client.cookies.set("session", "mallory.forged")
        self.assertEqual(self.client.post("/api/headway/token").status_code, 401)
        self.client.cookies.clear()

    def test_the_token_is_the_logged_in_users_and_sees_only_their_jobs(self):
        ann, bob = USERS
        self.login(bob)
        bobs = self.client.post("/api/transcodes?seconds=0.3").json()["job"]
        self.login(ann)
        answer = self.client.post("/api/headway/token")
        self.assertEqual(answer.status_code, 200)
        self.assertEqual(answer.headers["cache-control"], "no-store")
        minted = answer.json()
        self.assertEqual(minted["url"], URL)
        self.assertEqual(claims(minted["token"])["sub"], ann)
        status, _ = rest("GET", f"/v1/jobs/{bobs}", credential=minted["token"])
        self.assertEqual(status, 404)  # another user's job is as good as absent
        anns = self.client.post("/api/transcodes?seconds=0.3").json()["job"]
        status, state = rest("GET", f"/v1/jobs/{anns}", credential=minted["token"])
        self.assertEqual((status, state["owner"]), (200, ann))
        state = wait_status(anns, "completed")
        self.assertEqual(state["result"], {"url": f"https://cdn.example/{anns}.m3u8"})
        self.assertEqual(state["metadata"]["kind"], "transcode")

    def test_a_cancel_from_the_browser_stops_the_background_job_within_a_second(self):
        self.login(USERS[0])
        token = self.client.post("/api/headway/token").json()["token"]
        job_id = self.client.post("/api/transcodes?seconds=30").json()["job"]
        wait_status(job_id, "running")
        asked = time.monotonic()
        status, _ = rest("POST", f"/v1/jobs/{job_id}/cancel", {}, credential=token)
        self.assertEqual(status, 200)
        wait_status(job_id, "cancelled", timeout=5)
        self.assertLess(time.monotonic() - asked, 1.0)

    def test_the_page_loads_the_headway_client(self):
        page = self.client.get("/")
        self.assertEqual(page.status_code, 200)
        self.assertIn("createClient", page.text)
        for path in re.findall(r'"(/vendor/[^"]+\.js)"', page.text) + ["/vendor/client/index.js"]:
            self.assertEqual(self.client.get(path).status_code, 200, path)

    def test_the_example_serves_with_uvicorn(self):
        server = Process(
            [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", "0"],
            child_env(),
            cwd=EXAMPLE,
            name="uvicorn",
        )
        self.addCleanup(server.stop)
        server.wait_output("Uvicorn running on")
        base = re.search(r"Uvicorn running on (http://\S+)", server.output()).group(1)
        with self.assertRaises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(base + "/api/headway/token", method="POST"), timeout=10)
        self.assertEqual(refused.exception.code, 401)
        login = urllib.request.Request(base + "/login", data=b"user=" + USERS[1].encode(), method="POST")

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        opener = urllib.request.build_opener(NoRedirect)
        try:
            opener.open(login, timeout=10)
        except urllib.error.HTTPError as answer:
            cookie = answer.headers["set-cookie"].split(";")[0]
        minted = urllib.request.Request(base + "/api/headway/token", method="POST", headers={"Cookie": cookie})
        with urllib.request.urlopen(minted, timeout=10) as answer:
            self.assertEqual(claims(json.load(answer)["token"])["sub"], USERS[1])


if __name__ == "__main__":
    unittest.main()
