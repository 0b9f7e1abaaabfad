"""The served model and its tokenizer: prompts to token ids, a request's sampling settings checked against the
model, and generated token ids back to text."""

import secrets
from typing import Any, Dict, List, Optional, Tuple

from ..prepare_llada import block_model_length, prepare_generation_config, prepare_special_tokens
from ..sampling_llada import as_id_list, block_schedule
from .protocol import APIError, ParsedRequest, apply_stop, now

# The `diffusion_generate` settings a request may change; every job carries all of them, resolved, so that two
# requests that mean the same sampler share a batch.
SERVED_SETTINGS = (
    "max_new_tokens",
    "steps",
    "block_length",
    "temperature",
    "do_sample",
    "top_p",
    "top_k",
    "remasking",
    "threshold",
    "use_cache",
)
# the sampler's names in messages -> the request's
_OPENAI_NAMES = {"max_new_tokens": "max_tokens"}


class ServedModel:
    """A model and its tokenizer as the server uses them.

    Args:
        model: a LLaDA model in eval mode (its `generation_config` is the default of every request).
        tokenizer: its tokenizer; the chat endpoint needs its `chat_template`.
        name (`str`): the model id of the API (`/v1/models`, the `model` field of requests).
    """

    def __init__(self, model, tokenizer, name: str):
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.created = now()
        config = model.generation_config
        self.mask_token_id = prepare_special_tokens(model, config)
        self.eos_token_ids = set(
            as_id_list(config.eos_token_id if config.eos_token_id is not None else model.config.eos_token_id)
        )
        candidates = (config.pad_token_id, model.config.pad_token_id, tokenizer.pad_token_id, *self.eos_token_ids, 0)
        self.pad_token_id = next(i for i in candidates if i is not None and i != self.mask_token_id)
        self.max_positions = getattr(model.config, "max_position_embeddings", None)
        self.block_size = getattr(model.config, "block_size", None)
        self.vocab_size = model.config.vocab_size
        self._pieces: Dict[int, str] = {}

    # -- prompts ------------------------------------------------------------------------------------------------

    def encode(self, parsed: ParsedRequest) -> List[List[int]]:
        """The token ids of each prompt of a request (a chat request: its messages through the chat template)."""
        if parsed.chat:
            prompts = [self._render_chat(parsed.prompts[0])]
            encoded = [self.tokenizer(prompts[0], add_special_tokens=False)["input_ids"]]
        else:
            encoded = [self.tokenizer(p)["input_ids"] if isinstance(p, str) else p for p in parsed.prompts]
        param = "messages" if parsed.chat else "prompt"
        for ids in encoded:
            if any(not 0 <= token < self.vocab_size for token in ids):
                raise APIError(
                    f"Invalid value for '{param}': token ids must be in [0, {self.vocab_size - 1}].",
                    param=param,
                    code="invalid_value",
                )
            if self.mask_token_id in ids:
                raise APIError(
                    f"The {param} holds the mask token (id {self.mask_token_id}); filling masked text "
                    "inside a prompt is not served.",
                    param=param,
                    code="invalid_value",
                )
        return encoded

    def _render_chat(self, messages: List[Dict[str, str]]) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise APIError(
                "This model's tokenizer has no chat template, so chat messages cannot be rendered: use "
                "/v1/completions, or start llada-serve with --chat_template FILE.",
                param="messages",
                code="no_chat_template",
            )
        try:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except Exception as error:  # noqa: BLE001 - a template may raise anything (jinja's raise_exception)
            raise APIError(
                f"The chat template cannot render these messages: {error}", param="messages", code="invalid_value"
            ) from None

    # -- settings -----------------------------------------------------------------------------------------------

    def resolve_settings(self, parsed: ParsedRequest, prompts: List[List[int]]) -> Dict[str, Any]:
        """The request's settings over the model's generation config, checked as `diffusion_generate` would check
        them, and the prompts against the model's positions. Raises [`APIError`] (400) naming the field."""
        requested = dict(parsed.sampling)
        if requested.get("temperature") == 0:
            requested["do_sample"] = False  # greedy, even where the saved config samples
        try:
            config = prepare_generation_config(self.model, None, requested)
            if config.max_new_tokens is None:
                raise ValueError("`max_new_tokens` is not set by the model's generation config: set it.")
            block_length = config.block_length
            if self.block_size is not None:
                block_length = block_model_length(config, self.block_size, 0, 0)
            block_schedule(config.max_new_tokens, block_length, config.steps)
        except ValueError as error:
            raise self._settings_error(error) from None
        settings = {name: getattr(config, name) for name in SERVED_SETTINGS}
        settings["do_sample"] = bool(config.temperature)
        settings["temperature"] = config.temperature or 0.0
        longest = max(len(ids) for ids in prompts)
        if self.max_positions is not None and longest + config.max_new_tokens > self.max_positions:
            param = "messages" if parsed.chat else "prompt"
            raise APIError(
                f"This model's maximum context length is {self.max_positions} tokens. However, you requested "
                f"{longest + config.max_new_tokens} tokens ({longest} in the {param}, {config.max_new_tokens} in "
                f"the completion). Please reduce the length of the {param} or the completion ('max_tokens').",
                param=param,
                code="context_length_exceeded",
            )
        return settings

    @staticmethod
    def _settings_error(error: ValueError) -> APIError:
        message = str(error)
        for ours, theirs in _OPENAI_NAMES.items():
            message = message.replace(f"`{ours}`", f"`{theirs}`")
        for prefix in ("LLaDAGenerationConfig: ", "diffusion_generate: "):
            message = message.replace(prefix, "")
        param = message.split("`")[1] if message.count("`") >= 2 else None
        return APIError(message, param=param, code="invalid_value")

    @staticmethod
    def seed_of(parsed: ParsedRequest) -> int:
        """The request's seed, or a fresh random one (every row of a batch has its own stream)."""
        return parsed.seed if parsed.seed is not None else secrets.randbits(63)

    # -- text ---------------------------------------------------------------------------------------------------

    def until_eos(self, tokens: List[int]) -> Tuple[List[int], bool]:
        """The tokens before the first EOS, and whether there was one."""
        for index, token in enumerate(tokens):
            if token in self.eos_token_ids:
                return tokens[:index], True
        return tokens, False

    def decode(self, tokens: List[int]) -> str:
        return self.tokenizer.decode(self.until_eos(tokens)[0], skip_special_tokens=True)

    def committed_text(self, row: List[int]) -> str:
        """The text of a canvas row's committed prefix (up to its first masked position)."""
        first_mask = row.index(self.mask_token_id) if self.mask_token_id in row else len(row)
        return self.decode(row[:first_mask])

    def final(self, row: List[int], stop: List[str]) -> Tuple[str, str, int]:
        """A finished row's text (stop sequences applied), finish reason and number of completion tokens."""
        tokens, ended = self.until_eos(row)
        text, stopped = apply_stop(self.tokenizer.decode(tokens, skip_special_tokens=True), stop)
        return text, "stop" if ended or stopped else "length", len(tokens) + int(ended)

    def canvas(self, step: int, row: List[int]) -> dict:
        """A canvas row for a client that draws it: each position's text, `None` where it is still masked."""
        return {"step": step, "tokens": [None if token == self.mask_token_id else self.piece(token) for token in row]}

    def piece(self, token: int) -> str:
        if token not in self._pieces:
            self._pieces[token] = self.tokenizer.decode([token], skip_special_tokens=True)
        return self._pieces[token]

    def describe(self) -> dict:
        return {
            "id": self.name,
            "object": "model",
            "created": self.created,
            "owned_by": "llada",
            "max_model_len": self.max_positions,
        }


def check_model_name(served: ServedModel, requested: Optional[str]) -> None:
    if requested != served.name:
        raise APIError(
            f"The model `{requested}` does not exist. This server serves `{served.name}`.",
            status=404,
            param="model",
            code="model_not_found",
        )


__all__ = ["ServedModel", "SERVED_SETTINGS", "check_model_name"]
