"""The live dashboard in a real browser: Debian's Chromium, driven by Playwright, against a live broker.

A person logs in, watches the overview count a new agent without reloading, sends that agent a
message from the compose form and sees the agent's answer appear. The agent is a real WebSocket
client. A screenshot of the overview is kept at var/test-artifacts/dashboard-overview.png (or
under BROKER_TEST_ARTIFACTS). Without Chromium this test is skipped with the command to install
it, except where BROKER_REQUIRE_TOOLS=1 (as .ci/run sets after installing it): there a
missing browser fails.
"""

import json
import os
import shutil
from pathlib import Path

import pytest
from websockets.sync.client import connect

from devtools.live import manage
from tests.live import live_broker

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("BROKER_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "var" / "test-artifacts"))
WAIT_MS = 15_000

if CHROMIUM is None:
    if os.environ.get("BROKER_REQUIRE_TOOLS") == "1":
        raise RuntimeError("BROKER_REQUIRE_TOOLS=1 but Chromium is not installed: apt-get install -y chromium")
    pytest.skip("Chromium is not installed (apt-get install -y chromium); .ci/run installs it", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402


def _frame(ws, kind: str, timeout: float = 15) -> dict:
    while True:
        frame = json.loads(ws.recv(timeout=timeout))
        if frame["type"] == kind:
            return frame


def test_person_watches_an_agent_arrive_writes_to_it_and_reads_its_answer(tmp_path):
    with live_broker(tmp_path) as live:
        env = {**live.server.env, "DJANGO_SUPERUSER_PASSWORD": "a-long-test-password"}
        manage(env, "createsuperuser", "--noinput", "--username", "overseer", "--email", "o@example.com")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{live.url}/admin/login/?next=/admin/broker/")
            page.fill("#id_username", "overseer")
            page.fill("#id_password", "a-long-test-password")
            page.click("input[type=submit]")
            live_count = page.locator("#live-sessions")
            expect(live_count).to_have_text("0", timeout=WAIT_MS)

            headers = {"Authorization": f"Bearer {live.alpha_agent}"}
            with connect(live.server.ws_url, additional_headers=headers) as agent:
                agent.send(json.dumps({"type": "hello", "name": "frontend"}))
                welcome = _frame(agent, "welcome")
                expect(live_count).to_have_text("1", timeout=WAIT_MS)  # refreshed by itself, no reload
                expect(page.locator("#websocket-sessions")).to_have_text("1", timeout=WAIT_MS)
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "dashboard-overview.png"), full_page=True)

                page.click("text=alpha")
                page.click("text=frontend")
                page.fill("textarea[name=payload]", '{"text": "what are you working on?"}')
                page.click("#compose input[type=submit]")
                expect(page.locator("#compose-result")).to_contain_text("sent", timeout=WAIT_MS)

                question = _frame(agent, "message")["message"]
                assert question["payload"] == {"text": "what are you working on?"}
                assert question["sender_kind"] == "human" and question["sender_name"] == "overseer"
                agent.send(json.dumps({"type": "ack", "message_ids": [question["message_id"]]}))
                agent.send(json.dumps({"type": "send", "request_id": "answer", "recipient_id": question["sender_id"],
                                       "payload": {"text": "the login page"},
                                       "reply_to": question["message_id"]}))
                answer = _frame(agent, "result")
                assert answer["request_id"] == "answer", answer

                reply_row = page.locator(f"tr[data-message-id='{answer['result']['message_id']}']")
                expect(reply_row).to_contain_text("frontend", timeout=WAIT_MS)
                expect(reply_row).to_contain_text("acked", timeout=WAIT_MS)  # the page read it
                # The answer is in the question's thread, and the page says which.
                expect(reply_row.locator(f"td[title='{question['thread_id']}']")).to_have_text(
                    question["thread_id"][:8], timeout=WAIT_MS)
                reply_row.locator("button").click()
                expect(page.locator("#payload")).to_contain_text("the login page", timeout=WAIT_MS)
                assert welcome["session_id"] != question["sender_id"]
            browser.close()
