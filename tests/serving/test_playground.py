"""The playground page at / in headless Chromium: Debian's `chromium` driven by Playwright through
its executable path (`make setup` installs both), against the real test server.

The reference for what the page shows is the server's own answer to the same request over
plain HTTP: the text streamed into the page, its token count and the server's error messages.
Only the event-stream reader's test feeds the page hand-written bodies: forms of the format that
gpt2kit's server does not send but others may (CRLF, comments), and a stream cut before its end."""

from __future__ import annotations

import json
import shutil
import time

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from serving_helpers import API_KEY, running_server

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no `chromium` on PATH: install Debian's chromium package "
                                                         "(`make setup` does, with apt-get) to test the playground")
WAIT_MS = 60_000  # generous: a loaded CI machine decodes slowly; every wait ends as soon as its condition holds
expect.set_options(timeout=20_000)  # the same for quick checks (Playwright's default is 5 s)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(base_url=server.url)
    page = context.new_page()
    page.goto("/")
    yield page
    context.close()


def health(server) -> dict:
    return httpx.get(server.url + "/health").json()


def wait_until(condition, what: str, seconds: float = 30.0):
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.02)
    return value


def test_page_streams_what_the_api_answers(page: Page, server):
    page.get_by_label("API key").fill(API_KEY)
    page.get_by_label("API key").press("Tab")  # change: the page asks /v1/models again, with the key
    expect(page.locator("#model")).to_have_text("test-model")
    page.get_by_label("Prompt").fill("And the LORD said")
    page.get_by_label("Max tokens").fill("16")
    page.get_by_label("Temperature").fill("0.9")
    page.get_by_label("Top p").fill("0.95")
    page.get_by_label("Top k").fill("40")
    page.get_by_label("Seed").fill("7")
    page.get_by_label("Stop strings").fill("\\n\\n\nAmen")
    with page.expect_request("**/v1/completions") as sent:
        page.get_by_role("button", name="Generate").click()
    request = sent.value
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    body = request.post_data_json
    assert body == {"prompt": "And the LORD said", "max_tokens": 16, "temperature": 0.9, "top_p": 0.95, "top_k": 40,
                    "seed": 7, "stop": ["\n\n", "Amen"], "stream": True, "stream_options": {"include_usage": True},
                    "logprobs": 0}
    expect(page.locator("#status")).to_contain_text("done", timeout=WAIT_MS)

    plain = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    answer = httpx.post(server.v1 + "/completions", json=plain, headers={"Authorization": f"Bearer {API_KEY}"},
                        timeout=60).json()
    (choice,) = answer["choices"]
    assert page.locator("#completion").text_content() == choice["text"]
    assert page.locator("#shown_prompt").text_content() == "And the LORD said"
    assert int(page.locator("#tokens").text_content()) == answer["usage"]["completion_tokens"]
    reason = {"length": "done: max tokens reached", "stop": "done: stopped by the model"}[choice["finish_reason"]]
    expect(page.locator("#status")).to_have_text(reason)
    expect(page.locator("#error")).to_have_text("")

    # everything the page loaded came from the server itself
    loaded = page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
    assert {f"{server.url}/playground.js", f"{server.url}/playground.css"} <= set(loaded)
    assert all(url.startswith(server.url + "/") for url in loaded), loaded


def test_stop_ends_the_stream_and_frees_the_row(page: Page, server):
    page.get_by_label("API key").fill(API_KEY)
    page.get_by_label("Max tokens").fill("240")  # the context is 256: far more than is streamed before Stop
    page.get_by_label("Temperature").fill("0")  # greedy runs to max tokens on this prompt
    prompt = page.get_by_label("Prompt")
    prompt.fill("And the LORD said")
    prompt.press("Control+Enter")

    # the output grows over several updates
    page.wait_for_function("""() => {
        const n = document.getElementById("completion").textContent.length;
        window.seenLengths = window.seenLengths || new Set();
        if (n > 0) window.seenLengths.add(n);
        return window.seenLengths.size >= 3;
    }""", polling=10, timeout=WAIT_MS)
    expect(page.locator("#status")).to_have_text("generating…")
    assert health(server)["running_rows"] >= 1  # the page's request is being decoded
    assert int(page.locator("#tokens").text_content()) > 0
    assert float(page.locator("#rate").text_content()) > 0

    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#status")).to_have_text("stopped")
    stopped_at = page.locator("#completion").text_content()
    tokens = int(page.locator("#tokens").text_content())
    assert 0 < tokens < 240
    wait_until(lambda: health(server)["running_rows"] == 0, "the server frees the stopped request's row")
    assert page.locator("#completion").text_content() == stopped_at  # nothing arrives after Stop
    expect(page.get_by_role("button", name="Generate")).to_be_enabled()
    expect(page.get_by_role("button", name="Stop")).to_be_disabled()
    expect(page.locator("#error")).to_have_text("")


def test_wrong_api_key_shows_the_servers_401(page: Page, server):
    page.get_by_label("API key").fill("wrong-key")
    page.get_by_label("Prompt").fill("And the LORD said")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#status")).to_have_text("error")
    refused = httpx.post(server.v1 + "/completions", json={"prompt": "And the LORD said"},
                         headers={"Authorization": "Bearer wrong-key"})
    assert refused.status_code == 401
    expect(page.locator("#error")).to_have_text(f"401: {refused.json()['error']['message']}")
    assert page.locator("#completion").text_content() == ""


def test_api_key_is_kept_for_the_tab_only(page: Page, browser, server):
    page.get_by_label("API key").fill(API_KEY)
    page.reload()
    expect(page.get_by_label("API key")).to_have_value(API_KEY)
    expect(page.locator("#model")).to_have_text("test-model")  # sent with the first /v1/models
    other = browser.new_context(base_url=server.url)
    try:
        fresh = other.new_page()
        fresh.goto("/")
        expect(fresh.get_by_label("API key")).to_have_value("")
        expect(fresh.locator("#error")).to_contain_text("401: no API key given")
    finally:
        other.close()


def test_an_error_event_mid_stream_is_shown(browser, shipped):
    # a timeout after the 200 was sent travels as a `data: {"error": ...}` event
    with running_server(shipped, request_timeout=0.1) as server:
        context = browser.new_context(base_url=server.url)
        try:
            page = context.new_page()
            page.goto("/")
            expect(page.locator("#model")).to_have_text("test-model")  # no key needed on this server
            page.get_by_label("Max tokens").fill("240")
            page.get_by_label("Temperature").fill("0")
            page.get_by_label("Prompt").fill("And the LORD said")
            with page.expect_request("**/v1/completions") as sent:
                page.get_by_role("button", name="Generate").click()
            expect(page.locator("#status")).to_have_text("error", timeout=WAIT_MS)
            assert int(page.locator("#tokens").text_content()) < 240
            wait_until(lambda: health(server)["running_rows"] == 0, "the server frees the timed-out request's row")

            with httpx.stream("POST", server.v1 + "/completions", json=sent.value.post_data_json, timeout=60) as answer:
                assert answer.status_code == 200
                events = [json.loads(line[6:]) for line in answer.iter_lines() if line.startswith("data: {")]
            (message,) = [e["error"]["message"] for e in events if "error" in e]
            expect(page.locator("#error")).to_have_text(message)
        finally:
            context.close()


def sse_body(*events: str, newline: str = "\n") -> str:
    return "".join(f"data: {e}{newline}{newline}" for e in events)


@pytest.mark.parametrize(("body", "status", "error"), [
    # what the SSE format allows besides what gpt2kit's server sends: CRLF line ends, comments, no space after data:
    (": keep-alive\r\n\r\n" + sse_body('{"choices": [{"text": "In the", "logprobs": {"tokens": ["In", " the"]}}]}',
                                       newline="\r\n")
     + 'data:{"choices": [{"text": " beginning", "logprobs": {"tokens": [" beginning"]}, "finish_reason": "length"}]}'
       "\n\n" + sse_body("[DONE]"), "done: max tokens reached", ""),
    (sse_body('{"choices": [{"text": "In the", "logprobs": {"tokens": ["In", " the"]}}]}'), "error",
     "the server closed the stream before its end (data: [DONE])"),
], ids=["sse-variants", "no-done"])
def test_event_stream_parsing(page: Page, body: str, status: str, error: str):
    page.route("**/v1/completions", lambda route: route.fulfill(status=200, content_type="text/event-stream",
                                                                body=body))
    page.get_by_label("Prompt").fill("x")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#status")).to_have_text(status)
    expect(page.locator("#error")).to_have_text(error)
    expect(page.locator("#completion")).to_have_text("In the beginning" if status != "error" else "In the")
    expect(page.locator("#tokens")).to_have_text("3" if status != "error" else "2")
