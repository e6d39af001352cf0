"""The OpenAI API through the official `openai` client and raw HTTP, against a real server on
127.0.0.1 running the shipped model; references: transformers on the same weights, and gpt2kit's
own generate (what the server must equal token for token)."""

from __future__ import annotations

import concurrent.futures
import json

import httpx
import pytest
import torch

from gpt2kit.generation import complete
from serving_helpers import API_KEY

openai = pytest.importorskip("openai")

PROMPT = "And the LORD said unto Moses,"


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.v1, api_key=API_KEY, max_retries=0)


@pytest.fixture(scope="module")
def hf_model():
    import transformers

    from gpt2kit.weights.resolve import resolve_model_path

    # in float64: transformers' fp32 forward of the shipped model is 6e-3 off its own float64 logits here
    # (gpt2kit's fp32 is 1e-5 off), so fp64 is the reference both are held to
    return transformers.GPT2LMHeadModel.from_pretrained(resolve_model_path("default")).double().eval()


def test_greedy_completion_equals_gpt2kit_generate_and_transformers(client, server, hf_model):
    answer = client.completions.create(model="test-model", prompt=PROMPT, max_tokens=24, temperature=0)
    local = complete(server.loaded.model, server.loaded.tokenizer, PROMPT, max_new_tokens=24, temperature=0)[0]
    assert answer.choices[0].text == local.text
    assert answer.choices[0].finish_reason == ("length" if local.finish_reason == "length" else "stop")
    assert answer.usage.prompt_tokens == local.prompt_tokens
    assert answer.usage.completion_tokens == local.completion_tokens
    ids = torch.tensor([server.loaded.tokenizer.encode(PROMPT)])
    reference = hf_model.generate(ids, max_new_tokens=24, do_sample=False, pad_token_id=50256)[0, ids.shape[1]:]
    assert local.token_ids == reference.tolist()[:len(local.token_ids)]


def test_a_stream_joins_to_the_whole_answer_and_ends_with_usage(client):
    whole = client.completions.create(model="test-model", prompt=PROMPT, max_tokens=20, temperature=0)
    chunks = list(client.completions.create(model="test-model", prompt=PROMPT, max_tokens=20, temperature=0,
                                            stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])


def test_raw_stream_is_server_sent_events_ending_with_done(server):
    with httpx.stream("POST", server.v1 + "/completions", headers={"Authorization": f"Bearer {API_KEY}"},
                      json={"prompt": PROMPT, "max_tokens": 5, "stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[-2][6:])["choices"][0]["finish_reason"] == "length"


def test_echo_with_logprobs_scores_the_prompt_as_transformers(client, server, hf_model):
    """What lm-evaluation-harness asks for log-likelihoods: echo, logprobs, max_tokens 0."""
    answer = client.completions.create(model="test-model", prompt=PROMPT, max_tokens=0, echo=True, logprobs=1)
    choice = answer.choices[0]
    ids = server.loaded.tokenizer.encode(PROMPT)
    assert choice.text == PROMPT
    assert choice.logprobs.tokens == [server.loaded.tokenizer.decode([t]) for t in ids]
    with torch.no_grad():
        logits = hf_model(torch.tensor([ids])).logits[0].log_softmax(-1)
    expected = logits[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
    assert choice.logprobs.token_logprobs[0] is None
    assert max(abs(a - b) for a, b in zip(choice.logprobs.token_logprobs[1:], expected.tolist(), strict=True)) < 1e-4
    best = [server.loaded.tokenizer.decode([int(i)]) for i in logits[:-1].argmax(-1)]
    assert [next(iter(top)) for top in choice.logprobs.top_logprobs[1:]] == best
    assert choice.logprobs.text_offset == [sum(len(t) for t in choice.logprobs.tokens[:i]) for i in range(len(ids))]


def test_echo_with_generation_lists_prompt_then_completion_tokens(client):
    answer = client.completions.create(model="test-model", prompt=PROMPT, max_tokens=4, echo=True, logprobs=0,
                                       temperature=0)
    plain = client.completions.create(model="test-model", prompt=PROMPT, max_tokens=4, logprobs=0, temperature=0)
    choice = answer.choices[0]
    assert choice.text == PROMPT + plain.choices[0].text
    assert choice.logprobs.tokens[-4:] == plain.choices[0].logprobs.tokens
    assert choice.logprobs.token_logprobs[-4:] == pytest.approx(plain.choices[0].logprobs.token_logprobs, abs=1e-5)


def test_several_prompts_token_ids_and_n_choices(client, server):
    tokenizer = server.loaded.tokenizer
    answer = client.completions.create(model="test-model", prompt=[PROMPT, "Blessed are"], max_tokens=6, n=3,
                                       seed=7, temperature=1.0, extra_body={"top_k": 40})
    assert [c.index for c in answer.choices] == list(range(6))
    assert len({c.text for c in answer.choices[:3]}) > 1
    again = client.completions.create(model="test-model", prompt=[PROMPT, "Blessed are"], max_tokens=6, n=3,
                                      seed=7, temperature=1.0, extra_body={"top_k": 40})
    assert [c.text for c in again.choices] == [c.text for c in answer.choices]  # a seed repeats
    assert answer.usage.prompt_tokens == len(tokenizer.encode(PROMPT)) + len(tokenizer.encode("Blessed are"))
    by_ids = client.completions.create(model="test-model", prompt=tokenizer.encode("In the beginning"), max_tokens=5,
                                       temperature=0)
    by_text = client.completions.create(model="test-model", prompt="In the beginning", max_tokens=5, temperature=0)
    assert by_ids.choices[0].text == by_text.choices[0].text


def test_seeded_samples_equal_gpt2kit_generate(client, server):
    answer = client.completions.create(model="test-model", prompt=PROMPT, max_tokens=12, n=2, seed=3,
                                       temperature=0.9, top_p=0.95)
    local = complete(server.loaded.model, server.loaded.tokenizer, PROMPT, max_new_tokens=12, num_samples=2,
                     seed=3, temperature=0.9, top_p=0.95)
    assert [c.text for c in answer.choices] == [c.text for c in local]


def test_stop_strings_logit_bias_and_beams(client, server):
    loaded = server.loaded
    local = complete(loaded.model, loaded.tokenizer, PROMPT, max_new_tokens=30, temperature=0)[0]
    stop = local.text[8:12]
    answer = client.completions.create(model="test-model", prompt=PROMPT, max_tokens=30, temperature=0, stop=[stop])
    assert answer.choices[0].text == local.text[:local.text.index(stop)]
    assert answer.choices[0].finish_reason == "stop"
    token = loaded.tokenizer.encode(" Egypt")[0]
    biased = client.completions.create(model="test-model", prompt=PROMPT, max_tokens=3, temperature=0,
                                       logit_bias={str(token): 100})
    assert biased.choices[0].text == " Egypt" * 3
    beams = client.completions.create(model="test-model", prompt=PROMPT, max_tokens=8, n=2,
                                      extra_body={"num_beams": 3})
    local_beams = complete(loaded.model, loaded.tokenizer, PROMPT, max_new_tokens=8, num_beams=3,
                           num_return_sequences=2)
    assert [c.text for c in beams.choices] == [c.text for c in local_beams]


def test_chat_renders_the_template_and_streams_with_a_role_first(client, server):
    from gpt2kit.serving.chat import ChatTemplate

    messages = [{"role": "system", "content": "Answer in the words of the King James Bible."},
                {"role": "user", "content": "Who made the heaven and the earth?"}]
    answer = client.chat.completions.create(model="test-model", messages=messages, max_tokens=16, temperature=0,
                                            logprobs=True, top_logprobs=2)
    prompt = ChatTemplate.from_file().render(messages)
    assert prompt.endswith("User: Who made the heaven and the earth?\nAssistant:")
    template = ChatTemplate.from_file()
    local = complete(server.loaded.model, server.loaded.tokenizer, prompt, max_new_tokens=16, temperature=0,
                     stop=list(template.stops))[0]
    assert answer.choices[0].message.content == local.text.strip()
    assert answer.choices[0].message.role == "assistant"
    content = answer.choices[0].logprobs.content
    assert [c.logprob for c in content] == pytest.approx(local.logprobs, abs=1e-5)
    assert all(len(c.top_logprobs) == 2 for c in content)
    chunks = list(client.chat.completions.create(model="test-model", messages=messages, max_tokens=16,
                                                 temperature=0, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == local.text.strip()
    assert chunks[-1].usage.completion_tokens == answer.usage.completion_tokens


def test_models_health_and_metrics(client, server):
    assert [m.id for m in client.models.list().data] == ["test-model"]
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    text = httpx.get(server.url + "/metrics").text
    for name in ("gpt2kit_requests_total", "gpt2kit_generation_tokens_total", "gpt2kit_queue_depth",
                 "gpt2kit_batch_size_bucket", "gpt2kit_time_to_first_token_seconds_bucket",
                 "gpt2kit_time_per_output_token_seconds_bucket"):
        assert name in text
    assert 'endpoint="/v1/completions",status="200"' in text


def test_concurrent_requests_share_decode_steps_and_answer_as_alone(client, server):
    loaded = server.loaded
    prompts = ["In the beginning", "Blessed are the", "And it came to pass", "The LORD is my"]
    expected = [complete(loaded.model, loaded.tokenizer, p, max_new_tokens=24, temperature=0)[0].text
                for p in prompts]
    before = batch_steps(server.url)
    with concurrent.futures.ThreadPoolExecutor(len(prompts)) as pool:
        answers = list(pool.map(lambda p: client.completions.create(model="test-model", prompt=p, max_tokens=24,
                                                                     temperature=0), prompts))
    assert [a.choices[0].text for a in answers] == expected
    after = batch_steps(server.url)
    shared = sum(after[size] - before.get(size, 0) for size in after if size > 1)
    assert shared > 0  # steps that decoded more than one request's row


def batch_steps(url: str) -> dict[int, float]:
    """Decode steps per batch size so far, from the batch size histogram."""
    buckets = {}
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith("gpt2kit_batch_size_bucket"):
            le = line.split('le="')[1].split('"')[0]
            if le != "+Inf":
                buckets[int(float(le))] = float(line.rsplit(" ", 1)[1])
    sizes = sorted(buckets)
    return {s: buckets[s] - (buckets[sizes[i - 1]] if i else 0) for i, s in enumerate(sizes)}
