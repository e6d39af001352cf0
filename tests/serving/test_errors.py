"""Bad requests: each a 4xx with OpenAI's error object naming the field, the server serving on."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from serving_helpers import API_KEY, running_server

AUTH = {"Authorization": f"Bearer {API_KEY}"}
CONTEXT = 256  # the shipped model's


@pytest.mark.parametrize(("body", "status", "param", "words"), [
    ("{not json", 400, None, "not valid JSON"),
    ('["a list"]', 400, None, "JSON object"),
    ({"prompt": "x", "max_tokens": "many"}, 400, "max_tokens", "valid integer"),
    ({"prompt": "x", "stop": 5}, 400, "stop", "stop"),
    ({"prompt": 3.5}, 400, "prompt", "prompt"),
    ({"prompt": "x", "model": "gpt-4"}, 404, "model", "does not exist"),
    ({"prompt": "x", "temperature": -0.5}, 400, "temperature", ">= 0"),
    ({"prompt": "x", "top_p": 0}, 400, "top_p", "(0, 1]"),
    ({"prompt": "x", "top_p": 1.5}, 400, "top_p", "(0, 1]"),
    ({"prompt": "x", "max_tokens": -1}, 400, "max_tokens", "[0, 256]"),
    ({"prompt": "x", "max_tokens": CONTEXT + 1}, 400, "max_tokens", "context"),
    ({"prompt": "x " * 300, "max_tokens": 5}, 400, "prompt", "no room"),
    ({"prompt": "x", "n": 17}, 400, "n", "[1, 16]"),
    ({"prompt": "x", "n": 0}, 400, "n", "[1, 16]"),
    ({"prompt": ""}, 400, "prompt", "empty"),
    ({"prompt": []}, 400, "prompt", "empty"),
    ({"prompt": [5, 999999]}, 400, "prompt", "outside the vocabulary"),
    ({"prompt": "x", "logprobs": 21}, 400, "logprobs", "[0, 20]"),
    ({"prompt": "x", "logit_bias": {"abc": 1}}, 400, "logit_bias", "token ids"),
    ({"prompt": "x", "presence_penalty": 3}, 400, "presence_penalty", "[-2, 2]"),
    ({"prompt": "x", "stream": True, "num_beams": 2}, 400, "stream", "cannot stream"),
])
def test_bad_completion_requests(server, body, status, param, words):
    content = body if isinstance(body, str) else json.dumps(body)
    response = httpx.post(server.v1 + "/completions", content=content, headers=AUTH)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param and words in error["message"], error


def test_bad_chat_requests(server):
    for body, param in (({"messages": []}, "messages"), ({"messages": [{"role": "robot", "content": "x"}]}, "messages"),
                        ({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}, "top_logprobs")):
        response = httpx.post(server.v1 + "/chat/completions", json=body, headers=AUTH)
        assert response.status_code == 400 and response.json()["error"]["param"] == param, response.text


def test_api_keys_body_limit_and_unknown_paths(server):
    body = {"prompt": "x", "max_tokens": 1}
    missing = httpx.post(server.v1 + "/completions", json=body)
    wrong = httpx.post(server.v1 + "/completions", json=body, headers={"Authorization": "Bearer nope"})
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert "no API key" in missing.json()["error"]["message"] and "not valid" in wrong.json()["error"]["message"]
    assert httpx.get(server.v1 + "/models").status_code == 401
    big = httpx.post(server.v1 + "/completions", content=b'{"prompt": "' + b"x" * (5 << 20) + b'"}', headers=AUTH)
    assert big.status_code == 413 and "limit" in big.json()["error"]["message"]

    def chunks():  # no Content-Length: the limit is counted as the body arrives
        for _ in range(6):
            yield b" " * (1 << 20)

    streamed = httpx.post(server.v1 + "/completions", content=chunks(), headers=AUTH)
    assert streamed.status_code == 413
    assert httpx.get(server.url + "/v2/nothing").json()["error"]["code"] == "not_found"
    assert httpx.get(server.v1 + "/completions", headers=AUTH).status_code == 405
    assert httpx.get(server.v1 + "/models/other", headers=AUTH).status_code == 404
    # and it still serves
    ok = httpx.post(server.v1 + "/completions", json=body, headers=AUTH)
    assert ok.status_code == 200 and ok.json()["usage"]["completion_tokens"] == 1


def test_a_full_queue_answers_429_with_retry_after(tiny_loaded):
    with running_server(tiny_loaded, max_batch_size=1, max_queue=1) as server:
        with httpx.Client(timeout=60) as client:
            import concurrent.futures

            body = {"prompt": "x", "max_tokens": 200, "temperature": 0}
            with concurrent.futures.ThreadPoolExecutor(6) as pool:
                answers = list(pool.map(lambda _: client.post(server.v1 + "/completions", json=body), range(6)))
        codes = sorted(a.status_code for a in answers)
        assert 200 in codes and 429 in codes, codes
        refused = next(a for a in answers if a.status_code == 429)
        assert refused.headers["retry-after"] == "1" and refused.json()["error"]["type"] == "rate_limit_error"


def test_a_request_past_its_time_limit_is_cancelled_with_408(tiny_loaded):
    with running_server(tiny_loaded, request_timeout=0.3, max_batch_size=1) as server:
        slow = httpx.post(server.v1 + "/completions", json={"prompt": "x", "max_tokens": 250}, timeout=60)
        assert slow.status_code == 408 and slow.json()["error"]["code"] == "timeout"
        wait_until_idle(server.url)


def wait_until_idle(url: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while (health := httpx.get(url + "/health").json())["running_rows"] or health["queue_depth"]:
        assert time.monotonic() < deadline, f"rows still running: {health}"
        time.sleep(0.05)


def test_clients_that_go_away_free_their_rows(tiny_loaded):
    with running_server(tiny_loaded, max_batch_size=4) as server:
        body = {"prompt": "x", "max_tokens": 250, "temperature": 0}
        with httpx.stream("POST", server.v1 + "/completions", json={**body, "stream": True}) as response:
            lines = response.iter_lines()
            assert next(lines).startswith("data: ")
            assert httpx.get(server.url + "/health").json()["running_rows"] == 1
        wait_until_idle(server.url)  # a stream closed mid-way
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(server.v1 + "/completions", json=body, timeout=httpx.Timeout(60, read=0.3))
        wait_until_idle(server.url)  # a whole answer nobody waits for any more
