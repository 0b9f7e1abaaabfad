"""Tests for `llada-serve` (llada/serving, llada/cli/serve.py): the official `openai` client against the server on
loopback, the batching engine, streaming, errors, cancellation and shutdown.

The model is a tiny random one with the byte tokenizer, saved and reloaded, whose saved generation config (16
tokens in blocks of 4, ASCII bytes only) is the server's default.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from helpers import BYTE_EOS, BYTE_MASK, NAME, PAD, ROOT, ServerThread, free_port, save_tiny_byte_model, varied_model
from llada.prepare_llada import left_pad

fastapi = pytest.importorskip("fastapi", reason="the `serve` extra (fastapi, uvicorn) is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="the `serve` extra (fastapi, uvicorn) is not installed")
openai = pytest.importorskip("openai", reason="the `openai` client (dev extra) is not installed")
httpx = pytest.importorskip("httpx", reason="httpx (dev extra) is not installed")

from llada import LLaDAForMaskedDiffusion  # noqa: E402
from llada.serving import APIError, create_app  # noqa: E402
from llada.serving.engine import BatchingEngine, BatchStreamer, Job  # noqa: E402
from llada.serving.protocol import IncrementalText  # noqa: E402
from llada.training.tokenizers import build_byte_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return save_tiny_byte_model(tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="module")
def loaded(saved):
    from transformers import AutoTokenizer

    return LLaDAForMaskedDiffusion.from_pretrained(saved).eval(), AutoTokenizer.from_pretrained(saved)


@pytest.fixture(scope="module")
def server(loaded):
    model, tokenizer = loaded
    with ServerThread(create_app(model, tokenizer, NAME, max_batch_size=8, batch_window=0.2)) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    return server.client()


def reference_text(loaded, prompt: str, seed: int, **settings) -> str:
    """What `diffusion_generate` gives for the prompt alone, decoded as the server decodes it."""
    model, tokenizer = loaded
    ids = torch.tensor([tokenizer(prompt)["input_ids"]], dtype=torch.long)
    out = model.diffusion_generate(ids, seed=seed, **settings)[0, ids.shape[1] :].tolist()
    out = out[: out.index(BYTE_EOS)] if BYTE_EOS in out else out
    return tokenizer.decode(out, skip_special_tokens=True)


# ----------------------------------------------------------------------------------------------------------------
# The sampler's per-prompt seeds, and the engine's streamer


def test_seed_per_prompt_samples_each_row_as_alone():
    model = varied_model()
    prompts = [[11, 12, 13, 14, 15], [21, 22, 23], [31]]
    ids, mask = left_pad(prompts, PAD)
    settings = dict(max_new_tokens=8, steps=8, temperature=1.0, remasking="random")
    batch = model.diffusion_generate(ids, mask, seed=[5, 6, 7], num_return_sequences=2, **settings)
    for index, (prompt, seed) in enumerate(zip(prompts, [5, 6, 7])):
        alone = model.diffusion_generate(torch.tensor([prompt]), seed=seed, num_return_sequences=2, **settings)
        assert torch.equal(batch[2 * index : 2 * index + 2, -8:], alone[:, -8:])
    with pytest.raises(ValueError, match="one seed per prompt"):
        model.diffusion_generate(ids, mask, seed=[5, 6], **settings)


def test_cancelled_row_leaves_the_forward_batch():
    model = varied_model()
    rows_per_call = []
    model.model.register_forward_pre_hook(
        lambda module, args, kwargs: rows_per_call.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    jobs = [Job([11, 12], 1, 0, {}), Job([21, 22], 1, 1, {})]
    jobs[1].cancel()
    ids, mask = left_pad([job.prompt_ids for job in jobs], PAD)
    streamer = BatchStreamer(jobs, ids.shape[1], mask_token_id=99, pad_token_id=PAD)
    out = model.diffusion_generate(ids, mask, max_new_tokens=8, steps=8, streamer=streamer)
    assert rows_per_call == [1] * 8  # the cancelled row never ran
    assert out[1, 2:].tolist() == [PAD] * 8 and (out[0, 2:] != 99).all()


def test_worker_survives_a_failing_batch_and_shutdown_answers_the_queue():
    class FlakyModel:
        device = torch.device("cpu")

        def diffusion_generate(self, input_ids, attention_mask, **kwargs):
            if bool((input_ids == 13).any()):
                raise RuntimeError("boom")
            return SimpleNamespace(sequences=torch.cat([input_ids, torch.full((len(input_ids), 2), 5)], dim=1))

    async def scenario():
        engine = BatchingEngine(FlakyModel(), mask_token_id=99, pad_token_id=0, batch_window=0.0)
        engine.start()
        failing, fine, late = Job([13], 1, 0, {}), Job([14], 1, 0, {}), Job([15], 1, 0, {})
        for job in (failing, fine, late):
            job.attach(asyncio.get_running_loop())
        engine.submit([failing])
        event = await asyncio.wait_for(failing.events.get(), 30)
        assert event[0] == "error" and event[1].status == 500
        engine.submit([fine])
        assert await asyncio.wait_for(fine.events.get(), 30) == ("done", [[5, 5]])
        engine.stop(30)
        with pytest.raises(APIError, match="shutting down"):
            engine.submit([late])

    asyncio.run(scenario())


def test_incremental_text_holds_back_a_possible_stop_and_never_retracts():
    text = IncrementalText(stop=["END"])
    assert text.update("abc E") == "abc "  # "E" may start "END"
    assert text.update("abc EN") == ""
    assert text.update("abc ENx") == "ENx"
    assert text.update("abc ENx END more") == " " and text.stopped
    assert text.finish("abc ENx ") == ""


# ----------------------------------------------------------------------------------------------------------------
# The endpoints, through the openai client


def test_models_and_health(server, client):
    assert [model.id for model in client.models.list().data] == [NAME]
    assert client.models.retrieve(NAME).id == NAME
    health = httpx.get(server.url + "/health").json()
    assert health["status"] == "ok" and health["model"] == NAME


def test_completion_is_diffusion_generate_with_the_saved_defaults(client, loaded):
    response = client.completions.create(model=NAME, prompt="To be, or not", seed=3, temperature=1.0)
    assert response.object == "text_completion" and len(response.choices) == 1
    assert response.choices[0].text == reference_text(loaded, "To be, or not", seed=3, temperature=1.0)
    assert response.usage.prompt_tokens == len("To be, or not") and response.choices[0].finish_reason in (
        "stop",
        "length",
    )
    extra = dict(steps=8, remasking="random", top_k=20)
    response = client.completions.create(
        model=NAME, prompt="ROMEO:", max_tokens=8, seed=4, temperature=0.7, top_p=0.9, extra_body=extra
    )
    assert response.choices[0].text == reference_text(
        loaded, "ROMEO:", seed=4, temperature=0.7, top_p=0.9, max_new_tokens=8, **extra
    )


def test_completion_serves_n_samples_and_several_prompts(client):
    response = client.completions.create(model=NAME, prompt=["ab", "cd"], n=2, temperature=1.0, seed=1, max_tokens=8)
    assert [choice.index for choice in response.choices] == [0, 1, 2, 3]
    assert response.choices[0].text != response.choices[1].text  # two samples of one prompt differ
    assert response.usage.prompt_tokens == 4


def test_stop_sequence_cuts_the_text(client):
    full = client.completions.create(model=NAME, prompt="abc", seed=2, temperature=1.0).choices[0].text
    stop = full[3:5]
    assert len(stop) == 2
    cut = client.completions.create(model=NAME, prompt="abc", seed=2, temperature=1.0, stop=[stop]).choices[0]
    assert cut.text == full[: full.index(stop)] and cut.finish_reason == "stop"


def test_chat_renders_the_chat_template(client, loaded):
    _, tokenizer = loaded
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}]
    response = client.chat.completions.create(model=NAME, messages=messages, seed=0, max_tokens=8)
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert response.usage.prompt_tokens == len(tokenizer(rendered, add_special_tokens=False)["input_ids"])
    assert response.object == "chat.completion" and response.choices[0].message.role == "assistant"


def test_streaming_sends_the_committed_prefix_as_it_grows(client):
    settings = dict(
        model=NAME,
        prompt="To be",
        seed=5,
        temperature=1.0,
        max_tokens=16,
        extra_body={"remasking": "left_to_right", "block_length": 4},
    )
    whole = client.completions.create(**settings).choices[0].text
    chunks = list(client.completions.create(stream=True, stream_options={"include_usage": True}, **settings))
    texts = [chunk.choices[0].text for chunk in chunks if chunk.choices]
    assert "".join(texts) == whole
    assert sum(1 for text in texts if text) >= 4  # in order, one token a step: the text comes in pieces
    assert chunks[-2].choices[0].finish_reason in ("stop", "length") and chunks[-1].usage.prompt_tokens == 5


def test_chat_streaming_deltas(client):
    settings = dict(model=NAME, messages=[{"role": "user", "content": "Hi"}], seed=1, temperature=1.0, max_tokens=8)
    whole = client.chat.completions.create(**settings).choices[0].message.content
    chunks = list(client.chat.completions.create(stream=True, **settings))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == whole
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_stream_canvas_sends_the_whole_canvas_every_step(server):
    body = dict(
        model=NAME, prompt="abc", max_tokens=8, steps=8, block_length=8, stream=True, stream_canvas=True, seed=0
    )
    canvases = []
    with httpx.stream("POST", server.url + "/v1/completions", json=body, timeout=60) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                canvas = json.loads(line[6:])["choices"][0].get("canvas")
                if canvas is not None:
                    canvases.append(canvas)
    assert [canvas["step"] for canvas in canvases] == list(range(9))  # the starting canvas, then every step
    masked = [sum(token is None for token in canvas["tokens"]) for canvas in canvases]
    assert masked == list(range(8, -1, -1))  # one token committed per step
    assert all(len(canvas["tokens"]) == 8 for canvas in canvases)


# ----------------------------------------------------------------------------------------------------------------
# Errors: OpenAI's error JSON with the right status, and the server goes on serving


BAD_REQUESTS = [
    (dict(extra_body={"frobnicate": 1}), 400, "frobnicate", "Unrecognized request argument"),
    (dict(n=9), 400, "n", "between 1 and 8"),
    (dict(max_tokens=200), 400, "prompt", "maximum context length is 96"),
    (dict(temperature=-0.5), 400, "temperature", "[0, 2]"),
    (dict(top_p=0), 400, "top_p", "(0, 1]"),
    (dict(max_tokens=0), 400, "max_tokens", "integer >= 1"),
    (dict(extra_body={"steps": 0}), 400, "steps", "integer >= 1"),
    (dict(max_tokens=10), 400, "max_tokens", "multiple of `block_length`"),
    (dict(extra_body={"steps": 1}), 400, "steps", "steps"),
    (dict(extra_body={"remasking": "loudest"}), 400, "remasking", "low_confidence"),
    (dict(extra_body={"use_cache": "triple"}), 400, "use_cache", "prefix"),
    (dict(logprobs=2), 400, "logprobs", "not supported"),
    (dict(presence_penalty=0.5), 400, "presence_penalty", "not supported"),
    (dict(best_of=3), 400, "best_of", "not supported"),
    (dict(stop=["a", "b", "c", "d", "e"]), 400, "stop", "at most 4"),
    (dict(seed="x"), 400, "seed", "an integer"),
    (dict(prompt=[1, 2, BYTE_MASK]), 400, "prompt", "mask token"),
    (dict(prompt=[1, 2, 5000]), 400, "prompt", "token ids must be in"),
    (dict(model="gpt-4o"), 404, "model", "does not exist"),
    (dict(extra_body={"stream_canvas": True}), 400, "stream_canvas", "set 'stream'"),
]


@pytest.mark.parametrize("change, status, param, message", BAD_REQUESTS, ids=[str(b[0]) for b in BAD_REQUESTS])
def test_bad_completion_requests_get_openai_errors(client, server, change, status, param, message):
    request = {**dict(model=NAME, prompt="abc", max_tokens=8), **change}
    with pytest.raises(openai.APIStatusError) as caught:
        client.completions.create(**request)
    error = caught.value
    assert error.status_code == status and message in error.body["message"]
    assert set(error.body) == {"message", "type", "param", "code"} and error.body["type"]
    if param is not None:
        assert error.body["param"] == param
    assert httpx.get(server.url + "/health").json()["status"] == "ok"


def test_bad_http_requests_get_openai_errors(server):
    url = server.url
    cases = [
        (httpx.post(url + "/v1/completions", content=b"{not json"), 400, "parse the JSON body"),
        (httpx.post(url + "/v1/completions", json=["a list"]), 400, "JSON object"),
        (httpx.post(url + "/v1/completions", json={"model": NAME}), 400, "provide a prompt"),
        (httpx.post(url + "/v1/chat/completions", json={"model": NAME, "messages": []}), 400, "messages"),
        (httpx.post(url + "/v1/chat/completions", json={"model": NAME, "messages": [{"role": "tool"}]}), 400, "role"),
        (httpx.post(url + "/v1/chat/completions", json={"model": NAME, "prompt": "x"}), 400, "Unrecognized"),
        (httpx.get(url + "/v1/completions"), 405, "Method Not Allowed"),
        (httpx.get(url + "/v2/nothing"), 404, "Unknown path"),
    ]
    for response, status, message in cases:
        assert response.status_code == status, response.text
        assert message in response.json()["error"]["message"]
    assert httpx.get(url + "/health").json()["status"] == "ok"


def test_chat_without_a_chat_template_is_a_clear_400(loaded):
    from starlette.testclient import TestClient

    model, tokenizer = loaded
    bare = build_byte_tokenizer()
    bare.chat_template = None
    with TestClient(create_app(model, bare, NAME)) as http:
        response = http.post(
            "/v1/chat/completions", json={"model": NAME, "messages": [{"role": "user", "content": "Hi"}]}
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "no_chat_template"
    assert "--chat_template" in response.json()["error"]["message"]


# ----------------------------------------------------------------------------------------------------------------
# Batching


def test_seeded_request_is_batch_invariant(server, client, loaded):
    settings = dict(model=NAME, max_tokens=16, temperature=1.0, extra_body={"remasking": "random"})
    alone = client.completions.create(prompt="To be, or not to be", seed=11, **settings).choices[0].text
    assert alone == reference_text(loaded, "To be, or not to be", seed=11, temperature=1.0, remasking="random")
    batches_before = httpx.get(server.url + "/health").json()["batches"]
    prompts = ["To be, or not to be", "a", "Now is the winter", "xyz", "To be, or not to be", "ROMEO: Hi", "", ""]
    seeds = [11, 1, 2, 3, 12, 4, 5, 6]
    with ThreadPoolExecutor(len(prompts)) as pool:
        responses = list(
            pool.map(
                lambda ps: client.completions.with_raw_response.create(prompt=ps[0], seed=ps[1], **settings),
                zip(prompts, seeds),
            )
        )
    batches = httpx.get(server.url + "/health").json()["batches"] - batches_before
    assert batches < len(prompts)  # requests shared batches (a 0.2 s window)
    assert int(responses[0].headers["x-batch-rows"]) > 1  # the first one had neighbours
    texts = [response.parse().choices[0].text for response in responses]
    assert texts[0] == alone
    assert texts[4] != alone  # the same prompt with another seed: its own sample
    for index in (1, 3, 6):  # left-padded rows, and an empty prompt (unconditional), sample as alone too
        assert texts[index] == reference_text(
            loaded, prompts[index], seed=seeds[index], temperature=1.0, remasking="random"
        )


def test_incompatible_settings_run_in_separate_batches(server, client):
    before = httpx.get(server.url + "/health").json()["batches"]
    with ThreadPoolExecutor(2) as pool:
        lengths = list(
            pool.map(
                lambda n: len(
                    client.completions.create(model=NAME, prompt="ab", max_tokens=n, seed=0, temperature=0, stop=None)
                    .choices[0]
                    .text
                ),
                [8, 16],
            )
        )
    assert httpx.get(server.url + "/health").json()["batches"] - before == 2
    assert lengths[0] <= 8 and lengths[1] <= 16


# ----------------------------------------------------------------------------------------------------------------
# Disconnects and shutdown: the command in a process of its own

CLIENT_THAT_STREAMS = """
import http.client, json, sys
connection = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
body = {"model": "tiny", "prompt": "abc", "max_tokens": 1000, "block_length": 4, "stream": True}  # 1000 steps
connection.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
response = connection.getresponse()
while response.readline():
    print("streaming", flush=True)
"""  # the standard library only: it starts at once


def start_serve(saved: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llada.cli.serve",
            str(saved),
            "--served_model_name",
            NAME,
            "--port",
            str(port),
            "--torch_threads",
            "1",
            "--max_batch_size",
            "4",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def wait_healthy(url: str, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        assert process.poll() is None, process.stderr.read()
        try:
            if httpx.get(url + "/health").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("llada-serve did not start")


def test_killed_client_and_graceful_shutdown(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = start_serve(save_tiny_byte_model(tmp_path, positions=1024), port)
    try:
        wait_healthy(url, serve)
        streaming = subprocess.Popen(
            [sys.executable, "-c", CLIENT_THAT_STREAMS, str(port)], stdout=subprocess.PIPE, text=True
        )
        assert streaming.stdout.readline().strip() == "streaming"
        streaming.kill()  # mid-stream
        streaming.wait(10)
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)
        assert client.completions.create(model=NAME, prompt="abc", max_tokens=8).choices[0].finish_reason
        deadline = time.time() + 20
        while httpx.get(url + "/health").json()["running_rows"] and time.time() < deadline:
            time.sleep(0.05)
        assert httpx.get(url + "/health").json()["running_rows"] == 0
    finally:
        serve.send_signal(signal.SIGINT)  # Ctrl-C: graceful shutdown
        code = serve.wait(30)
    log = serve.stderr.read()
    assert code == 0, log
    assert "client disconnected: cancelled" in log
    assert '"POST /v1/completions" 200' in log and "completion_tokens=" in log
    assert "stopped" in log
