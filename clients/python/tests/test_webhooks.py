"""headway.verify_signature: the documented example, wrong secrets, old and
rotated signatures, and a real delivery from the hub to a receiver here."""

from __future__ import annotations

import http.server
import threading
import time
import unittest
import uuid

from support import HAVE_HUB, NEEDS_HUB, rest

from headway import verify_signature

# The vector of docs/webhooks.md, also checked against the hub's signer.
BODY = b'{"id":"dl_1","type":"job.completed"}'
HEADER = "t=1700000000,v1=5ce831097e66080c97192429bd8b88462f11a2d6aa4f3a248d04d3e2b715de42"
ROTATED = (
    "t=1700000000,v1=d35833e057429e938b8ac957013d62e52d3b5b26bda61345cb9a5aa86e702cc0,"
    "v1=5ce831097e66080c97192429bd8b88462f11a2d6aa4f3a248d04d3e2b715de42"
)
NOW = 1700000000


class VerifySignatureTest(unittest.TestCase):
    def test_accepts_the_documented_example(self):
        self.assertTrue(verify_signature("whsec_example", HEADER, BODY, now=NOW))
        self.assertTrue(verify_signature("whsec_example", HEADER, BODY.decode(), now=NOW + 299))

    def test_refuses_a_wrong_secret_or_a_changed_body(self):
        self.assertFalse(verify_signature("whsec_other", HEADER, BODY, now=NOW))
        self.assertFalse(verify_signature("whsec_example", HEADER, BODY + b" ", now=NOW))

    def test_refuses_an_old_timestamp_unless_tolerated(self):
        self.assertFalse(verify_signature("whsec_example", HEADER, BODY, now=NOW + 301))
        self.assertTrue(verify_signature("whsec_example", HEADER, BODY, now=NOW + 301, tolerance=400))

    def test_refuses_malformed_headers(self):
        for header in (None, "", "v1=abc", "t=abc,v1=" + "0" * 64, "t=1700000000"):
            self.assertFalse(verify_signature("whsec_example", header, BODY, now=NOW), header)

    def test_accepts_either_secret_during_a_rotation(self):
        self.assertTrue(verify_signature("whsec_example", ROTATED, BODY, now=NOW))
        self.assertTrue(verify_signature("whsec_new", ROTATED, BODY, now=NOW))


@unittest.skipUnless(HAVE_HUB, NEEDS_HUB)
class RealDeliveryTest(unittest.TestCase):
    def test_verifies_a_delivery_from_the_hub(self):
        received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.headers["Headway-Signature"], self.headers["Headway-Delivery"], body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        owner = "py-webhook-" + uuid.uuid4().hex[:8]
        url = "http://127.0.0.1:%d/hook" % server.server_address[1]
        status, webhook = rest("POST", "/v1/webhooks", {"url": url, "owner": owner})
        self.assertEqual(status, 201, webhook)
        try:
            job = "py-wh-" + uuid.uuid4().hex[:8]
            self.assertEqual(rest("POST", "/v1/jobs", {"id": job, "owner": owner})[0], 201)
            self.assertEqual(rest("POST", f"/v1/jobs/{job}/events", {"events": [{"kind": "completed"}]})[0], 200)
            deadline = time.monotonic() + 15
            while not received and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertEqual(len(received), 1)
            signature, delivery, body = received[0]
            self.assertTrue(verify_signature(webhook["secret"], signature, body))
            self.assertFalse(verify_signature(webhook["secret"] + "x", signature, body))
            self.assertIn(delivery.encode(), body)
        finally:
            rest("DELETE", f"/v1/webhooks/{webhook['id']}")
            server.shutdown()
            server.server_close()
