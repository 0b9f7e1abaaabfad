"""The ASGI app of `llada-serve`: OpenAI-compatible endpoints over the batching engine, and the demo page.

Endpoints: `GET /health`, `GET /v1/models`, `GET /v1/models/{id}`, `POST /v1/completions`,
`POST /v1/chat/completions` and `GET /demo`. Every error is OpenAI's error JSON with its HTTP status; every request
gives one log line (`llada.serving` logger) when its response ends: client, method, path, status, seconds, and
for generation the tokens, the batch it ran in and its time in the queue.
"""

import asyncio
import json
import logging
import time
from contextlib import asynccontextmanager
from importlib import resources
from typing import List

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .engine import BatchingEngine, Job
from .protocol import (
    APIError,
    IncrementalText,
    ParsedRequest,
    chunk_body,
    now,
    parse_request,
    request_id,
    response_body,
    usage,
    usage_chunk,
)
from .served_model import ServedModel, check_model_name

logger = logging.getLogger("llada.serving")

MAX_BODY_BYTES = 4 * 1024 * 1024
DISCONNECT_POLL_S = 0.1  # how often a waiting request checks that its client is still there


class ClientGone(Exception):
    """The client closed the connection before its answer was ready."""


def create_app(
    model,
    tokenizer,
    name: str,
    max_batch_size: int = 32,
    batch_window: float = 0.02,
    max_queue: int = 256,
    shutdown_timeout: float = 60.0,
) -> FastAPI:
    r"""
    The server's ASGI app. The batching engine's worker starts and stops with the app's lifespan.

    Args:
        model: a LLaDA model in eval mode; its `generation_config` gives every setting a request leaves out.
        tokenizer: its tokenizer (a chat template for `/v1/chat/completions`).
        name (`str`): the model id clients send as `model`.
        max_batch_size (`int`): rows of one batch at most; also the largest `n`.
        batch_window (`float`): seconds an idle engine waits after a request for others to batch with it.
        max_queue (`int`): prompts waiting at most; beyond, requests are answered 429.
        shutdown_timeout (`float`): seconds the running batch has to finish at shutdown.

    Example:

    ```python
    >>> app = create_app(model, tokenizer, "llada-tiny")
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)
    ```
    """
    served = ServedModel(model, tokenizer, name)
    engine = BatchingEngine(model, served.mask_token_id, served.pad_token_id, max_batch_size, batch_window, max_queue)

    @asynccontextmanager
    async def lifespan(app):
        engine.start()
        logger.info("serving %s (batches of up to %d rows, window %.0f ms)", name, max_batch_size, batch_window * 1000)
        yield
        await asyncio.to_thread(engine.stop, shutdown_timeout)
        logger.info("stopped")

    app = FastAPI(title="llada-serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.served, app.state.engine = served, engine
    app.add_middleware(RequestLog)

    @app.exception_handler(APIError)
    async def api_error(request: Request, error: APIError):
        request.state.log = f"{error.code or error.type}: {error.message}"
        return JSONResponse(error.to_dict(), status_code=error.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        message = (
            f"Unknown path: {request.method} {request.url.path}"
            if error.status_code == 404
            else f"{error.detail}: {request.method} {request.url.path}"
        )
        return JSONResponse(APIError(message, status=error.status_code).to_dict(), status_code=error.status_code)

    @app.exception_handler(Exception)
    async def server_error(request: Request, error: Exception):
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        body = APIError(f"The server had an error: {type(error).__name__}.", status=500, type="server_error")
        return JSONResponse(body.to_dict(), status_code=500)

    @app.get("/health")
    async def health():
        return {
            "status": "ok",
            "model": name,
            "queued": engine.queued,
            "running_rows": engine.running_rows,
            "batches": engine.batches,
        }

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [served.describe()]}

    @app.get("/v1/models/{model_id:path}")
    async def one_model(model_id: str):
        check_model_name(served, model_id)
        return served.describe()

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await _generate(request, served, engine, chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await _generate(request, served, engine, chat=True)

    @app.get("/demo")
    async def demo():
        return HTMLResponse(resources.files("llada.serving").joinpath("static/demo.html").read_text("utf-8"))

    @app.get("/", include_in_schema=False)
    async def root():
        return RedirectResponse("/demo")

    return app


# ----------------------------------------------------------------------------------------------------------------
# Generation


async def _read_json(request: Request):
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise APIError(f"The request body is larger than {MAX_BODY_BYTES} bytes.", status=413)
    try:
        return json.loads(body)
    except ValueError:
        raise APIError(
            "We could not parse the JSON body of your request. The body must be a JSON object.", code="invalid_json"
        ) from None


async def _generate(request: Request, served: ServedModel, engine: BatchingEngine, chat: bool):
    parsed = parse_request(await _read_json(request), chat, max_n=engine.max_batch_size)
    check_model_name(served, parsed.model)
    prompts = served.encode(parsed)
    settings = served.resolve_settings(parsed, prompts)
    stream = ("canvas" if parsed.stream_canvas else "text") if parsed.stream else None
    loop = asyncio.get_running_loop()
    jobs = [Job(ids, parsed.n, served.seed_of(parsed), settings, stream) for ids in prompts]
    for job in jobs:
        job.attach(loop)
    engine.submit(jobs)
    rid, created = request_id(chat), now()
    if parsed.stream:
        events = _stream(request, served, parsed, jobs[0], rid, created)
        return JobStreamResponse(
            events,
            jobs,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    try:
        watch = ClientWatch(request)
        rows = [await _wait_done(watch, job) for job in jobs]
    except ClientGone:
        request.state.log = "client disconnected: cancelled"
        return Response(status_code=499)
    finally:
        for job in jobs:  # no-op for finished jobs; cancels the rest when the client left or a prompt failed
            job.cancel()
    choices, completion_tokens = [], 0
    for job_rows in rows:
        for row in job_rows:
            text, reason, count = served.final(row, parsed.stop)
            choices.append({"text": text, "finish_reason": reason})
            completion_tokens += count
    prompt_tokens = sum(len(ids) for ids in prompts)
    _log_generation(request, jobs, prompt_tokens, completion_tokens)
    body = response_body(chat, rid, served.name, created, choices, usage(prompt_tokens, completion_tokens))
    return JSONResponse(body, headers={"X-Batch-Rows": str(max(job.batch_rows for job in jobs))})


class ClientWatch:
    """Notices a client that has gone. The ASGI server drops what is sent to a closed connection without an error,
    so a request asks, at most every `DISCONNECT_POLL_S` seconds, whether its client is still there."""

    def __init__(self, request: Request):
        self.request, self.checked = request, time.monotonic()

    async def check(self) -> None:
        if time.monotonic() - self.checked < DISCONNECT_POLL_S:
            return
        self.checked = time.monotonic()
        if await self.request.is_disconnected():
            raise ClientGone()


async def _next_event(watch: ClientWatch, job: Job):
    """The job's next event; raises `ClientGone` if the client disconnects meanwhile."""
    while True:
        await watch.check()
        try:
            return await asyncio.wait_for(job.events.get(), DISCONNECT_POLL_S)
        except asyncio.TimeoutError:
            continue


async def _wait_done(watch: ClientWatch, job: Job) -> List[List[int]]:
    while True:
        event = await _next_event(watch, job)
        if event[0] == "error":
            raise event[1]
        if event[0] == "done":
            return event[1]


async def _stream(request: Request, served: ServedModel, parsed: ParsedRequest, job: Job, rid: str, created: int):
    """Server-sent events of one prompt's `n` samples: text deltas as the committed prefix grows (with
    `stream_canvas`, every step's canvas too), a last chunk with each finish reason, usage if asked, `[DONE]`."""
    chat, name = parsed.chat, served.name
    texts, watch = [IncrementalText(parsed.stop) for _ in range(job.n)], ClientWatch(request)
    if chat:
        for index in range(job.n):
            yield _sse(chunk_body(chat, rid, name, created, index, text="", role=True))
    try:
        while True:
            event = await _next_event(watch, job)
            if event[0] == "error":
                request.state.log = f"error {event[1].status}: {event[1].message}"
                yield _sse(event[1].to_dict())
                break
            if event[0] == "done":
                completion_tokens = 0
                for index, row in enumerate(event[1]):
                    text, reason, count = served.final(row, parsed.stop)
                    completion_tokens += count
                    yield _sse(chunk_body(chat, rid, name, created, index, texts[index].finish(text), reason))
                if parsed.include_usage:
                    yield _sse(usage_chunk(chat, rid, name, created, usage(len(job.prompt_ids), completion_tokens)))
                _log_generation(request, [job], len(job.prompt_ids), completion_tokens)
                break
            for index, row in enumerate(event[-1]):
                delta = texts[index].update(served.committed_text(row) if event[0] == "canvas" else served.decode(row))
                canvas = served.canvas(event[1], row) if event[0] == "canvas" else None
                if delta or canvas is not None:
                    yield _sse(chunk_body(chat, rid, name, created, index, delta, canvas=canvas))
            if event[0] == "text" and all(text.stopped for text in texts):
                job.cancel()  # every sample hit a stop sequence: its rows need no more steps
    except ClientGone:
        request.state.log = "client disconnected: cancelled"
        return
    yield "data: [DONE]\n\n"


def _sse(body: dict) -> str:
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def _log_generation(request: Request, jobs: List[Job], prompt_tokens: int, completion_tokens: int) -> None:
    request.state.log = (
        f"prompt_tokens={prompt_tokens} completion_tokens={completion_tokens} "
        f"rows={sum(job.n for job in jobs)} batch_rows={max(job.batch_rows for job in jobs)} "
        f"queued={max(job.queued for job in jobs):.3f}s "
        f"decoding={max(job.decoding for job in jobs):.3f}s"
    )


class JobStreamResponse(StreamingResponse):
    """A stream whose jobs are cancelled when it ends in any way (finished, failed, or its client gone)."""

    def __init__(self, content, jobs: List[Job], **kwargs):
        super().__init__(content, **kwargs)
        self.jobs = jobs

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            for job in self.jobs:
                job.cancel()
            # a stream that ended before its last event: the client left (the server cancelled the stream)
            scope.setdefault("state", {}).setdefault("log", "client disconnected: cancelled")


class RequestLog:
    """ASGI middleware: one log line per HTTP request, when its response has ended."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), {}

        async def send_logged(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        except Exception:  # answered 500 by the server's outermost handler
            status.setdefault("code", 500)
            raise
        finally:
            client = "%s:%s" % tuple(scope["client"]) if scope.get("client") else "-"
            extra = scope.get("state", {}).get("log", "")
            logger.info(
                '%s "%s %s" %s %.3fs %s',
                client,
                scope["method"],
                scope["path"],
                status.get("code", "-"),
                time.perf_counter() - started,
                extra,
            )


__all__ = ["create_app"]
