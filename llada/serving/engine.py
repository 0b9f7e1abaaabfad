"""The batching engine of `llada-serve`: one worker thread decodes the queued requests in left-padded batches.

A request becomes one [`Job`] per prompt (its `n` samples are rows of the same batch). Jobs wait in one queue. The
worker takes the oldest job and every queued job whose settings are compatible with it, up to `max_batch_size`
rows, and runs them through one `diffusion_generate` call. It waits for companions while they keep coming, each
within `batch_window` seconds of the previous one (a few windows at most), counted from the oldest job's arrival or,
when the worker has just finished a batch, from then: the clients it answered then send their next requests into
the next batch, and the batches do not split into groups that take turns.

- Compatible means the same settings of the call (`max_new_tokens`, `steps`, `block_length`, `temperature`,
  `top_p`, `remasking`, `threshold`, `use_cache`, ...: one canvas length and one sampler for the batch) and the
  same `n` (and empty prompts batch only with empty prompts). The seed is per row: every job has one (drawn at random
  when the request sets none), and
  `diffusion_generate(seed=[...])` gives each prompt its own random streams, so a seeded request's text does not
  depend on the other rows of its batch.
- The prompts are left-padded; `diffusion_generate` masks the padding and counts positions from each row's first
  real token, so the padding changes nothing.
- Progress goes to each job through the batch's streamer (`put(canvas)` after every step): the committed prefix
  of its rows (text streaming) or the whole canvas (`stream_canvas`).
- A job cancelled while queued is dropped; one cancelled while decoding has the masked positions of its rows
  filled with padding by the streamer, so that those rows count as finished and leave the forward batch at the
  next step (`diffusion_generate` drops rows with nothing left to decode).

Events reach a job's asyncio queue through its event loop (`call_soon_threadsafe`): `("text", rows)`,
`("canvas", step, rows)`, `("done", rows)` or `("error", APIError)`, where rows are token id lists, one per sample.
"""

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch

from ..prepare_llada import left_pad
from .protocol import APIError

logger = logging.getLogger("llada.serving")

WINDOW_EXTENSIONS = 5  # a batch waits for companions `batch_window` after the last arrival, this many windows at most


@dataclass(eq=False)
class Job:
    """One prompt of a request, decoded as `n` rows of a batch.

    Args:
        prompt_ids (`list[int]`): the prompt's token ids (may be empty: unconditional generation).
        n (`int`): samples of the prompt.
        seed (`int`): the seed of the rows' random streams.
        settings (`dict`): the `diffusion_generate` settings, all of them resolved (the batch's key).
        stream (`str`, *optional*): `None`, `"text"` (the committed prefix after every step that grows it) or
            `"canvas"` (the whole canvas after every step).
    """

    prompt_ids: List[int]
    n: int
    seed: int
    settings: Dict
    stream: Optional[str] = None
    loop: Optional[asyncio.AbstractEventLoop] = None
    events: Optional[asyncio.Queue] = None
    arrival: float = field(default_factory=time.perf_counter)
    cancelled: threading.Event = field(default_factory=threading.Event)
    batch_rows: int = 0  # rows of the batch the job ran in
    queued: float = 0.0  # seconds between arrival and the start of its batch
    decoding: float = 0.0  # seconds its batch's `diffusion_generate` call took

    def __post_init__(self):
        # an empty prompt (unconditional generation) would be a row of padding only in a batch with prompts, which
        # does not sample as it does alone: such jobs batch among themselves
        self.key = (self.n, not self.prompt_ids, tuple(sorted(self.settings.items())))

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop, self.events = loop, asyncio.Queue()

    def cancel(self) -> None:
        self.cancelled.set()

    def post(self, *event) -> None:
        """Hands an event to the job's event loop (from the worker thread)."""
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the loop is closed: nobody waits for this job any more
            pass


class BatchStreamer:
    """The streamer of one batch: after every step, each job's progress, and the cancelled rows made finished."""

    def __init__(self, jobs: List[Job], prompt_length: int, mask_token_id: int, pad_token_id: int):
        self.jobs, self.prompt_length = jobs, prompt_length
        self.mask_token_id, self.pad_token_id = mask_token_id, pad_token_id
        self.first_rows = [sum(job.n for job in jobs[:index]) for index in range(len(jobs))]
        self.committed = [[0] * job.n for job in jobs]  # length of each row's committed prefix already sent
        self.step = -1

    def put(self, canvas: torch.Tensor) -> None:
        self.step += 1  # 0: the starting canvas, before any step
        generated = canvas[:, self.prompt_length :]  # (batch, max_new_tokens), a view of the canvas
        for index, (job, first) in enumerate(zip(self.jobs, self.first_rows)):
            rows = generated[first : first + job.n]  # (n, max_new_tokens)
            if job.cancelled.is_set():  # in place: the loop sees these rows finished and drops them
                rows.masked_fill_(rows == self.mask_token_id, self.pad_token_id)
            elif job.stream == "canvas":
                job.post("canvas", self.step, rows.tolist())
            elif job.stream == "text":
                masked = rows == self.mask_token_id
                prefix = torch.where(masked.any(dim=-1), masked.int().argmax(dim=-1), masked.shape[1]).tolist()
                if prefix != self.committed[index]:
                    self.committed[index] = prefix
                    job.post("text", [row[:length] for row, length in zip(rows.tolist(), prefix)])

    def end(self) -> None:
        pass


class BatchingEngine:
    """Queues jobs and decodes them in batches on one worker thread (see the module docstring).

    Args:
        model: a LLaDA model (anything with `diffusion_generate`).
        mask_token_id (`int`), pad_token_id (`int`): the canvas's mask id, and the id of the left padding (and of
            the filled positions of cancelled rows).
        max_batch_size (`int`): rows of one `diffusion_generate` call at most.
        batch_window (`float`): seconds the worker waits for a next compatible job before it starts a batch.
        max_queue (`int`): jobs waiting at most; a request beyond is refused with 429.
    """

    def __init__(
        self,
        model,
        mask_token_id: int,
        pad_token_id: int,
        max_batch_size: int = 32,
        batch_window: float = 0.02,
        max_queue: int = 256,
    ):
        self.model, self.mask_token_id, self.pad_token_id = model, mask_token_id, pad_token_id
        self.max_batch_size, self.batch_window, self.max_queue = max_batch_size, batch_window, max_queue
        self._pending: List[Job] = []
        self._condition = threading.Condition()
        self._stopping = False
        self._thread: Optional[threading.Thread] = None
        self.running_rows = 0
        self.batches = 0
        self._free_since = 0.0  # when the last batch ended

    @property
    def queued(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="llada-batching", daemon=True)
        self._thread.start()

    def submit(self, jobs: List[Job]) -> None:
        with self._condition:
            if self._stopping:
                raise APIError("The server is shutting down.", status=503, type="server_error", code="shutting_down")
            if len(self._pending) + len(jobs) > self.max_queue:
                raise APIError(
                    f"The server is busy: {len(self._pending)} requests are queued (at most "
                    f"{self.max_queue}). Retry later.",
                    status=429,
                    type="rate_limit_error",
                    code="queue_full",
                )
            self._pending.extend(jobs)
            self._condition.notify()

    def stop(self, timeout: Optional[float] = None) -> None:
        """Lets the running batch finish, then stops the worker; jobs still queued get a 503 error."""
        with self._condition:
            self._stopping = True
            self._condition.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._condition:
            left, self._pending = self._pending, []
        for job in left:
            job.post(
                "error",
                APIError("The server is shutting down.", status=503, type="server_error", code="shutting_down"),
            )

    def _work(self) -> None:
        while True:
            jobs = self._next_batch()
            if jobs is None:
                return
            self._run_batch(jobs)

    def _next_batch(self) -> Optional[List[Job]]:
        """The oldest job and the compatible jobs queued with it, once its window has passed or the batch is full."""
        with self._condition:
            while True:
                self._pending = [job for job in self._pending if not job.cancelled.is_set()]
                if self._stopping:
                    return None
                if not self._pending:
                    self._condition.wait()
                    continue
                first = self._pending[0]
                group = [job for job in self._pending if job.key == first.key]
                # the window opens at the job's arrival, or when the worker became free if that is later (the
                # clients of the batch just finished send their next requests then: they join this batch instead
                # of the batches splitting into groups that take turns), and stays open while compatible jobs
                # keep arriving, each within `batch_window` of the last, for `WINDOW_EXTENSIONS` windows at most
                opened = max(first.arrival, self._free_since)
                newest = max(job.arrival for job in group)
                closes = min(opened + WINDOW_EXTENSIONS * self.batch_window, max(opened, newest) + self.batch_window)
                wait = closes - time.perf_counter()
                if sum(job.n for job in group) >= self.max_batch_size or wait <= 0:
                    break
                self._condition.wait(wait)
            picked, rows = [], 0
            for job in group:
                if rows + job.n > self.max_batch_size:
                    break
                picked.append(job)
                rows += job.n
            self._pending = [job for job in self._pending if job not in picked]
            return picked

    def _run_batch(self, jobs: List[Job]) -> None:
        started = time.perf_counter()
        rows = sum(job.n for job in jobs)
        for job in jobs:
            job.queued, job.batch_rows = started - job.arrival, rows
        self.running_rows, self.batches = rows, self.batches + 1
        input_ids, attention_mask = left_pad([job.prompt_ids for job in jobs], self.pad_token_id)
        prompt_length = input_ids.shape[1]
        streamer = BatchStreamer(jobs, prompt_length, self.mask_token_id, self.pad_token_id)
        try:
            out = self.model.diffusion_generate(
                input_ids.to(self.model.device),
                attention_mask=attention_mask.to(self.model.device),
                seed=[job.seed for job in jobs],
                num_return_sequences=jobs[0].n,
                streamer=streamer,
                return_dict_in_generate=True,
                **jobs[0].settings,
            )
        except ValueError as error:  # a combination of settings the checks before queueing did not catch
            for job in jobs:
                job.post("error", APIError(str(error)))
        except Exception as error:  # noqa: BLE001 - the worker must survive anything one batch does
            logger.exception("batch of %d rows failed", rows)
            for job in jobs:
                job.post(
                    "error",
                    APIError(
                        f"The server failed to decode the batch: {type(error).__name__}.",
                        status=500,
                        type="server_error",
                    ),
                )
        else:
            generated = out.sequences[:, prompt_length:].tolist()
            for job, first in zip(jobs, streamer.first_rows):
                job.decoding = time.perf_counter() - started
                job.post("done", generated[first : first + job.n])
        finally:
            self.running_rows = 0
            self._free_since = time.perf_counter()


__all__ = ["BatchStreamer", "BatchingEngine", "Job"]
