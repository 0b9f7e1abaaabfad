"""The OpenAI side of `llada-serve`: request checking, error bodies and response objects.

A request body is checked field by field before anything is queued. Every field of the OpenAI schema that the
server knows is either served, accepted at its neutral value only (e.g. `presence_penalty=0`), or refused with a
message that says why; any other field is an "Unrecognized request argument", as the OpenAI API answers it. The
sampler's own settings are extra fields of the body (`steps`, `block_length`, `remasking`, `threshold`,
`use_cache`, `top_k`, and `stream_canvas` for clients that draw the canvas).

Errors are [`APIError`]s, rendered as OpenAI's error JSON: `{"error": {"message", "type", "param", "code"}}`.
"""

import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

# Settings of diffusion sampling accepted as extra fields of the body, and what each must be.
DIFFUSION_FIELDS = ("steps", "block_length", "remasking", "threshold", "use_cache", "top_k")
MAX_STOP_SEQUENCES = 4  # as the OpenAI API


class APIError(Exception):
    """An error answered as OpenAI's error JSON with HTTP status `status`."""

    def __init__(
        self,
        message: str,
        status: int = 400,
        type: str = "invalid_request_error",
        param: Optional[str] = None,
        code: Optional[str] = None,
    ):
        super().__init__(message)
        self.message, self.status, self.type, self.param, self.code = message, status, type, param, code

    def to_dict(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


@dataclass
class ParsedRequest:
    """A checked request of either endpoint.

    Args:
        chat (`bool`): `/v1/chat/completions` (`messages`) rather than `/v1/completions` (`prompt`).
        prompts (`list`): each prompt as a string or a list of token ids; a chat request has one, its messages.
        sampling (`dict`): the `diffusion_generate` settings the request set (the model's generation config gives
            the others).
    """

    chat: bool
    model: str
    prompts: List[Any]
    sampling: Dict[str, Any] = field(default_factory=dict)
    n: int = 1
    seed: Optional[int] = None
    stop: List[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    stream_canvas: bool = False


# ----------------------------------------------------------------------------------------------------------------
# Field checks: each returns the value or raises APIError naming the field


def _bad(name: str, expected: str, value) -> APIError:
    return APIError(
        f"Invalid value for '{name}': expected {expected}, got {value!r}.", param=name, code="invalid_value"
    )


def _number(body, name, low=None, high=None, low_open=False):
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
        raise _bad(name, "a number", value)
    if (low is not None and (value < low or (low_open and value == low))) or (high is not None and value > high):
        interval = f"{'(' if low_open else '['}{low}, {high if high is not None else 'inf'}]"
        raise _bad(name, f"a number in {interval}", value)
    return value


def _integer(body, name, low=None, high=None):
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad(name, "an integer", value)
    if (low is not None and value < low) or (high is not None and value > high):
        limits = f">= {low}" if high is None else f"between {low} and {high}"
        raise _bad(name, f"an integer {limits}", value)
    return value


def _boolean(body, name, default=False) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _bad(name, "true or false", value)
    return value


def _refuse_unless_neutral(body: dict, neutral: Dict[str, Tuple[tuple, str]]) -> None:
    """Known OpenAI fields the sampler cannot serve: accepted only at a value that changes nothing."""
    for name, (neutral_values, why) in neutral.items():
        if name in body and body[name] not in neutral_values:
            raise APIError(
                f"'{name}' is not supported by this server: {why}", param=name, code="unsupported_parameter"
            )


_NOT_SERVED = {
    "logprobs": (
        (None, False, 0),
        "a diffusion model commits its tokens out of order over many steps, so the server "
        "reports no per-token log-probabilities.",
    ),
    "top_logprobs": ((None, 0), "no per-token log-probabilities are reported (see 'logprobs')."),
    "presence_penalty": ((None, 0, 0.0), "the sampler has no presence penalty."),
    "frequency_penalty": ((None, 0, 0.0), "the sampler has no frequency penalty."),
    "logit_bias": ((None, {}), "logit biases are not served."),
    "best_of": ((None, 1), "only best_of=1 is served; ask for several samples with 'n'."),
    "echo": ((None, False), "the prompt is not echoed; it is the client's own text."),
    "suffix": ((None, ""), "infilling is not served over HTTP; use `model.infill` or `llada-generate --suffix`."),
    "tools": ((None, []), "tool calls are not served."),
    "tool_choice": ((None, "none"), "tool calls are not served."),
    "functions": ((None, []), "function calls are not served."),
    "function_call": ((None, "none"), "function calls are not served."),
    "response_format": ((None, {"type": "text"}), "only plain text responses are served."),
    "audio": ((None,), "only text is served."),
    "modalities": ((None, ["text"]), "only text is served."),
    "prediction": ((None,), "predicted outputs are not served."),
    "reasoning_effort": ((None,), "this model does not reason in separate tokens."),
}

# Fields accepted and ignored: they do not change the text.
_IGNORED = ("user", "metadata", "store", "service_tier")

# The fields both endpoints read; each adds its own input and the unserved fields it knows.
_SHARED_FIELDS = {
    "model",
    "max_tokens",
    "temperature",
    "top_p",
    "n",
    "stream",
    "stream_options",
    "stop",
    "seed",
    "stream_canvas",
    *DIFFUSION_FIELDS,
    *_IGNORED,
}
_COMPLETION_UNSERVED = ("logprobs", "presence_penalty", "frequency_penalty", "logit_bias", "best_of", "echo", "suffix")
COMPLETION_FIELDS = {"prompt", *_SHARED_FIELDS, *(name for name in _NOT_SERVED if name in _COMPLETION_UNSERVED)}
CHAT_FIELDS = {
    "messages",
    "max_completion_tokens",
    *_SHARED_FIELDS,
    *(name for name in _NOT_SERVED if name not in ("best_of", "echo", "suffix")),
}


def parse_request(body, chat: bool, max_n: int) -> ParsedRequest:
    """Checks an OpenAI request body of `/v1/chat/completions` (`chat`) or `/v1/completions`.

    Args:
        body (`dict`): the decoded JSON body.
        chat (`bool`): which endpoint.
        max_n (`int`): the largest `n` served (the rows of one batch).

    Returns:
        [`ParsedRequest`]. Raises [`APIError`] (status 400) on the first field that is unknown, missing, of the
        wrong type, out of range or not served.
    """
    if not isinstance(body, dict):
        raise APIError("The request body must be a JSON object.")
    allowed = CHAT_FIELDS if chat else COMPLETION_FIELDS
    for name in body:
        if name not in allowed:
            raise APIError(f"Unrecognized request argument supplied: {name}", param=name, code="unknown_parameter")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise APIError("You must provide a model parameter.", param="model", code="missing_required_parameter")
    _refuse_unless_neutral(body, {name: _NOT_SERVED[name] for name in _NOT_SERVED if name in allowed})
    prompts = [_messages(body.get("messages"))] if chat else _prompts(body.get("prompt"))
    parsed = ParsedRequest(chat=chat, model=model, prompts=prompts)
    parsed.sampling = _sampling(body, chat)
    parsed.n = _integer(body, "n", 1, max_n) or 1
    parsed.seed = _integer(body, "seed")
    parsed.stop = _stop(body.get("stop"))
    parsed.stream = _boolean(body, "stream")
    parsed.stream_canvas = _boolean(body, "stream_canvas")
    options = body.get("stream_options")
    if options is not None:
        if not parsed.stream:
            raise APIError("'stream_options' is only allowed when 'stream' is true.", param="stream_options")
        if not isinstance(options, dict) or set(options) - {"include_usage"}:
            raise _bad("stream_options", "an object with 'include_usage'", options)
        parsed.include_usage = _boolean(options, "include_usage")
    if parsed.stream_canvas and not parsed.stream:
        raise APIError(
            "'stream_canvas' sends the canvas of every step over a stream: set 'stream' to true too.",
            param="stream_canvas",
        )
    if parsed.stream and len(prompts) > 1:
        raise APIError(
            "Streaming serves one prompt per request; send the prompts in separate requests.", param="prompt"
        )
    return parsed


def _sampling(body: dict, chat: bool) -> Dict[str, Any]:
    """The `diffusion_generate` settings of a body: OpenAI's names mapped onto the sampler's."""
    sampling = {}
    limit_name = "max_tokens"
    if chat and body.get("max_completion_tokens") is not None:
        if body.get("max_tokens") is not None:
            raise APIError("Set 'max_tokens' or 'max_completion_tokens', not both.", param="max_completion_tokens")
        limit_name = "max_completion_tokens"
    checks = {
        "max_new_tokens": _integer(body, limit_name, 1),
        "temperature": _number(body, "temperature", 0, 2),
        "top_p": _number(body, "top_p", 0, 1, low_open=True),
        "steps": _integer(body, "steps", 1),
        "block_length": _integer(body, "block_length", 1),
        "threshold": _number(body, "threshold", 0, 1),
        "top_k": _integer(body, "top_k", 0),
    }
    sampling.update({name: value for name, value in checks.items() if value is not None})
    if body.get("remasking") is not None:
        if not isinstance(body["remasking"], str):
            raise _bad("remasking", "a string", body["remasking"])
        sampling["remasking"] = body["remasking"]  # the strategy names are checked against the sampler's registry
    if "use_cache" in body and body["use_cache"] is not None:
        value = body["use_cache"]
        if value not in (False, "prefix", "dual", "none"):
            raise _bad("use_cache", "false, 'none', 'prefix' or 'dual'", value)
        sampling["use_cache"] = False if value == "none" else value
    return sampling


def _prompts(prompt) -> List[Any]:
    """`prompt`: a string, a list of strings, a list of token ids or a list of such lists."""
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt:
        if all(isinstance(item, str) for item in prompt):
            return list(prompt)
        if all(isinstance(item, int) and not isinstance(item, bool) for item in prompt):
            return [list(prompt)]
        if all(
            isinstance(item, list)
            and item
            and all(isinstance(token, int) and not isinstance(token, bool) for token in item)
            for item in prompt
        ):
            return [list(item) for item in prompt]
    if prompt is None:
        raise APIError("You must provide a prompt.", param="prompt", code="missing_required_parameter")
    raise _bad("prompt", "a string, a list of strings, or token ids", prompt)


def _messages(messages) -> List[Dict[str, str]]:
    """`messages`: a non-empty list of `{"role", "content"}`, content a string or a list of text parts."""
    if messages is None:
        raise APIError("You must provide messages.", param="messages", code="missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages", "a non-empty array of messages", messages)
    checked = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise _bad(where, "an object with a 'role'", message)
        if message["role"] not in ("system", "developer", "user", "assistant"):
            raise APIError(
                f"Invalid value for '{where}.role': '{message['role']}' is not served (system, developer, "
                "user or assistant).",
                param=f"{where}.role",
                code="invalid_value",
            )
        content = message.get("content")
        if isinstance(content, list):  # text parts only
            if not all(
                isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
                for part in content
            ):
                raise APIError(
                    f"Invalid content in '{where}': only text parts are served.",
                    param=f"{where}.content",
                    code="invalid_value",
                )
            content = "".join(part["text"] for part in content)
        if not isinstance(content, str):
            raise _bad(f"{where}.content", "a string or a list of text parts", content)
        checked.append({"role": message["role"], "content": content})
    return checked


def _stop(stop) -> List[str]:
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(item, str) and item for item in stops):
        raise _bad("stop", "a non-empty string or a list of them", stop)
    if len(stops) > MAX_STOP_SEQUENCES:
        raise _bad("stop", f"at most {MAX_STOP_SEQUENCES} sequences", stop)
    return stops


# ----------------------------------------------------------------------------------------------------------------
# Text: stop sequences, and streamed text that is never taken back


def apply_stop(text: str, stop: List[str]) -> Tuple[str, bool]:
    """`text` cut before the earliest stop sequence, and whether one was found."""
    cut = min((index for index in (text.find(s) for s in stop) if index >= 0), default=-1)
    return (text, False) if cut < 0 else (text[:cut], True)


class IncrementalText:
    """The text of a growing committed prefix, handed out as deltas that are never taken back.

    A delta holds back what could still change: a trailing replacement character (an incomplete UTF-8 sequence of a
    byte-level tokenizer) and a tail that may be the start of a stop sequence.
    """

    def __init__(self, stop: List[str]):
        self.stop, self.sent, self.stopped = stop, "", False

    def update(self, text: str) -> str:
        if self.stopped:
            return ""
        text, self.stopped = apply_stop(text, self.stop)
        if not self.stopped:
            text = text.rstrip("\ufffd")
            hold = max((k for s in self.stop for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
            text = text[: len(text) - hold]
        return self._advance(text)

    def finish(self, final_text: str) -> str:
        """The rest of `final_text` (the text of the finished row, stop sequences applied)."""
        self.stopped = True
        return self._advance(final_text)

    def _advance(self, text: str) -> str:
        if not text.startswith(self.sent):  # a retokenised tail: wait for the final text
            return ""
        delta, self.sent = text[len(self.sent) :], text
        return delta


# ----------------------------------------------------------------------------------------------------------------
# Response objects


def request_id(chat: bool) -> str:
    return ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def response_body(chat: bool, rid: str, model: str, created: int, choices: List[dict], usage_: dict) -> dict:
    """A `text_completion` / `chat.completion` object; `choices` as `{"text", "finish_reason"}`."""
    if chat:
        choices = [
            {
                "index": i,
                "message": {"role": "assistant", "content": c["text"]},
                "logprobs": None,
                "finish_reason": c["finish_reason"],
            }
            for i, c in enumerate(choices)
        ]
    else:
        choices = [
            {"index": i, "text": c["text"], "logprobs": None, "finish_reason": c["finish_reason"]}
            for i, c in enumerate(choices)
        ]
    return {
        "id": rid,
        "object": "chat.completion" if chat else "text_completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage_,
    }


def chunk_body(
    chat: bool,
    rid: str,
    model: str,
    created: int,
    index: int,
    text: Optional[str] = None,
    finish_reason: Optional[str] = None,
    role: bool = False,
    canvas: Optional[dict] = None,
) -> dict:
    """One streamed chunk for choice `index`: a text delta, a finish reason, the chat role, and with
    `stream_canvas` the canvas of the step (an extra `canvas` field of the choice)."""
    if chat:
        delta = {"role": "assistant"} if role else {}
        if text is not None:
            delta["content"] = text
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    else:
        choice = {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish_reason}
    if canvas is not None:
        choice["canvas"] = canvas
    return {
        "id": rid,
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": created,
        "model": model,
        "choices": [choice],
    }


def usage_chunk(chat: bool, rid: str, model: str, created: int, usage_: dict) -> dict:
    return {
        "id": rid,
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage_,
    }


def now() -> int:
    return int(time.time())


__all__ = [
    "APIError",
    "IncrementalText",
    "ParsedRequest",
    "apply_stop",
    "chunk_body",
    "parse_request",
    "response_body",
    "usage",
    "usage_chunk",
]
