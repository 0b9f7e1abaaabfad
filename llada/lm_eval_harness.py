"""lm-evaluation-harness integration: the model type `"llada"` for `lm_eval`.

- `loglikelihood`: LLaDA's Monte Carlo estimate of `log p(continuation | context)` (`llada.likelihood`); every
  request uses the same seed, so the choices of one question share their random draws.
- `loglikelihood_rolling`: the same estimator over disjoint windows of at most `max_length` tokens, each scored
  given the tokens before it; in expectation a lower bound (the ELBO) on the document's log-likelihood, so the
  reported perplexities are upper bounds.
- `generate_until`: `diffusion_generate` on left-padded batches; the text is cut at EOS and at the first stop
  sequence.

lm-eval (0.4.x) has no plug-in discovery for models: a model type exists once its module is imported. Run it through
`llada-lm-eval` (or `python -m llada.cli.harness`), which is the `lm_eval` command with this model registered:

    llada-lm-eval --model llada --model_args pretrained=DIR,mc_num=128 --tasks TASKS [--include_path DIR]

From Python, `import llada.lm_eval_harness` before `lm_eval.simple_evaluate(model="llada", ...)`.
"""

import json
import logging
from pathlib import Path
from typing import List, Optional, Tuple

import torch
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from tqdm.auto import tqdm

from .likelihood import is_greedy_answer, monte_carlo_log_likelihood
from .prepare_llada import left_pad
from .sampling_llada import as_id_list

logger = logging.getLogger(__name__)


@register_model("llada")
class LLaDAEvalHarness(TemplateLM):
    r"""
    A masked-diffusion model (this project's format) as an lm-eval `LM`.

    Args (all settable through `--model_args key=value,...`):
        pretrained (`str`): local folder or Hub id of a model in this project's format (convert official GSAI-ML
            checkpoints first with `llada-convert`).
        tokenizer (`str`, *optional*): tokenizer folder or id; defaults to `pretrained`.
        dtype (`str`, defaults to `"auto"`): `"auto"` (the checkpoint's), `"bfloat16"`, `"float16"` or `"float32"`.
        trust_remote_code (`bool`, defaults to `True`): load the Hub code saved next to the weights.
        mc_num (`int`, defaults to 128): Monte Carlo draws per `loglikelihood` request.
        mc_batch_size (`int`, defaults to 32): draws per forward pass.
        cfg_scale (`float`, defaults to 0.0): classifier-free guidance for likelihoods and generation.
        k_sampling (`str`, defaults to `"stratified"`): how masked counts are drawn (`"stratified"`, `"uniform"`).
        check_greedy (`bool`, defaults to `False`): compute `is_greedy` by greedy unmasking (one forward per
            continuation token); otherwise `is_greedy` is reported as False.
        rolling_mc_num (`int`, *optional*): draws per window for `loglikelihood_rolling` (defaults to `mc_num`).
        max_length (`int`, *optional*): longest input; defaults to the model's `max_position_embeddings`.
        add_bos_token (`bool`, defaults to `True`): prepend the tokenizer's BOS token (when it has one).
        max_new_tokens, steps, block_length, temperature, remasking: generation defaults for `generate_until`
            (a task's `max_gen_toks` applies when `max_new_tokens` is not given). Any length works with any block
            length, given here or saved in the model's `generation_config.json`: a length shorter than a block is
            one block; a longer one is generated in whole blocks and cut back to the length asked for.
        seed (`int`, defaults to 0): seed of the Monte Carlo draws and of sampling.
        batch_size (`int`, defaults to 1): prompts per `diffusion_generate` call.
    """

    backend = "causal"  # tokenise context + continuation together, then split (TemplateLM)

    def __init__(
        self,
        pretrained: str,
        tokenizer: Optional[str] = None,
        device: Optional[str] = None,
        dtype: str = "auto",
        trust_remote_code: bool = True,
        mc_num: int = 128,
        mc_batch_size: int = 32,
        cfg_scale: float = 0.0,
        k_sampling: str = "stratified",
        check_greedy: bool = False,
        rolling_mc_num: Optional[int] = None,
        max_length: Optional[int] = None,
        add_bos_token: bool = True,
        max_new_tokens: Optional[int] = None,
        steps: Optional[int] = None,
        block_length: Optional[int] = None,
        temperature: float = 0.0,
        remasking: str = "low_confidence",
        seed: int = 0,
        batch_size=1,
        max_batch_size=None,
        **unused,
    ):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        if unused:
            logger.warning("llada: ignoring unknown model_args %s", sorted(unused))
        for name, value in (("mc_num", mc_num), ("mc_batch_size", mc_batch_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"llada model_args: `{name}` must be a positive integer, got {value!r}.")
        _refuse_official_checkpoint(pretrained)
        self._device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        torch_dtype = "auto" if dtype == "auto" else getattr(torch, str(dtype))
        self.model = AutoModel.from_pretrained(pretrained, trust_remote_code=trust_remote_code, dtype=torch_dtype)
        self.model.to(self._device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer or pretrained, trust_remote_code=trust_remote_code)
        self.tokenizer.padding_side = "left"
        self.pretrained = str(pretrained)
        self.mc_num, self.mc_batch_size, self.rolling_mc_num = mc_num, mc_batch_size, rolling_mc_num or mc_num
        self.cfg_scale, self.k_sampling, self.check_greedy, self.seed = cfg_scale, k_sampling, check_greedy, seed
        self.max_length = max_length or self.model.config.max_position_embeddings
        self.add_bos_token = add_bos_token and self.tokenizer.bos_token_id is not None
        self.generation_defaults = dict(
            max_new_tokens=max_new_tokens,
            steps=steps,
            block_length=block_length,
            temperature=temperature,
            remasking=remasking,
        )
        if isinstance(batch_size, str) and batch_size.isdigit():  # lm_eval's --batch_size arrives as a string
            batch_size = int(batch_size)
        self.batch_size = batch_size if isinstance(batch_size, int) and batch_size > 0 else 1
        if self.batch_size != batch_size:
            logger.warning("llada: batch_size %r is not a positive integer; using 1.", batch_size)

    # ------------------------------------------------------------------------------------------------------------
    # tokenisation (TemplateLM hooks)

    @property
    def eot_token_id(self) -> int:
        eos = self.model.config.eos_token_id
        return eos[0] if isinstance(eos, (list, tuple)) else eos

    @property
    def prefix_token_id(self) -> int:
        return self.tokenizer.bos_token_id if self.add_bos_token else self.eot_token_id

    @property
    def tokenizer_name(self) -> str:
        return self.tokenizer.name_or_path.replace("/", "__")

    def tok_encode(self, string: str, add_special_tokens: Optional[bool] = None, **kwargs) -> List[int]:
        ids = self.tokenizer.encode(string, add_special_tokens=False)
        if add_special_tokens is not False and self.add_bos_token and ids[:1] != [self.tokenizer.bos_token_id]:
            ids = [self.tokenizer.bos_token_id] + ids
        return ids

    def apply_chat_template(self, chat_history, add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(
            chat_history,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=not add_generation_prompt,
        )

    # ------------------------------------------------------------------------------------------------------------
    # likelihoods

    def _score(self, context: List[int], continuation: List[int], num_samples: int) -> Tuple[float, bool]:
        """Monte Carlo log-likelihood of `continuation` after `context`, the context cut from the left to fit."""
        if not continuation:
            return 0.0, True
        continuation = continuation[-self.max_length :]
        context = context[max(0, len(context) + len(continuation) - self.max_length) :]
        log_likelihood = monte_carlo_log_likelihood(
            self.model,
            context,
            continuation,
            num_samples=num_samples,
            batch_size=self.mc_batch_size,
            cfg_scale=self.cfg_scale,
            k_sampling=self.k_sampling,
            seed=self.seed,
        )
        greedy = self.check_greedy and is_greedy_answer(self.model, context, continuation)
        return log_likelihood, bool(greedy)

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs) -> List[Tuple[float, bool]]:
        results = []
        for request_strings, context, continuation in tqdm(requests, desc="llada loglikelihood", disable=disable_tqdm):
            result = self._score(context, continuation, self.mc_num)
            self.cache_hook.add_partial("loglikelihood", request_strings, result)
            results.append(result)
        return results

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> List[float]:
        results = []
        for (string,) in tqdm(
            [request.args for request in requests], desc="llada loglikelihood_rolling", disable=disable_tqdm
        ):
            tokens = self.tok_encode(string, add_special_tokens=False)
            # windows of at most max_length - 1 predicted tokens, each after the tokens before it (context + window
            # fit in max_length); every token is scored exactly once
            windows = [
                make_disjoint_window(w)
                for w in get_rolling_token_windows(
                    tokens, self.prefix_token_id, max_seq_len=self.max_length - 1, context_len=1
                )
            ]
            total = sum(self._score(context, window, self.rolling_mc_num)[0] for context, window in windows)
            self.cache_hook.add_partial("loglikelihood_rolling", (string,), total)
            results.append(total)
        return results

    # ------------------------------------------------------------------------------------------------------------
    # generation

    def generate_until(self, requests, disable_tqdm: bool = False) -> List[str]:
        arguments = [request.args for request in requests]
        # batches share their generation settings: group requests by their kwargs, keep the original order
        groups = {}
        for index, (_, gen_kwargs) in enumerate(arguments):
            groups.setdefault(json.dumps(gen_kwargs, sort_keys=True, default=str), []).append(index)
        batches = [
            indices[i : i + self.batch_size]
            for indices in groups.values()
            for i in range(0, len(indices), self.batch_size)
        ]
        results = [None] * len(arguments)
        for batch in tqdm(batches, desc="llada generate_until", disable=disable_tqdm):
            contexts = [arguments[i][0] for i in batch]
            texts = self._generate_batch(contexts, arguments[batch[0]][1])
            for index, text in zip(batch, texts):
                self.cache_hook.add_partial("generate_until", arguments[index], text)
                results[index] = text
        return results

    def _generation_settings(self, gen_kwargs: dict) -> Tuple[dict, List[str], int]:
        """`diffusion_generate` settings, stop strings, and the number of tokens the task asked for."""
        gen_kwargs = dict(gen_kwargs or {})
        until = gen_kwargs.pop("until", None) or []
        until = [until] if isinstance(until, str) else list(until)
        settings = {k: v for k, v in self.generation_defaults.items() if v is not None}
        settings.setdefault("max_new_tokens", int(gen_kwargs.pop("max_gen_toks", 128)))
        if gen_kwargs.get("do_sample") and gen_kwargs.get("temperature") is not None:
            settings["temperature"] = float(gen_kwargs["temperature"])
        requested = settings["max_new_tokens"]
        settings.update(self._fit_blocks(settings))
        if self.cfg_scale:
            settings["cfg_scale"] = self.cfg_scale
        eos_text = self.tokenizer.decode([self.eot_token_id])
        return settings, until + ([eos_text] if eos_text and eos_text not in until else []), requested

    def _fit_blocks(self, settings: dict) -> dict:
        """Block length and steps that fit the requested length, whatever the model's saved generation config says.

        The block length (`model_args`, else the model's `generation_config.json`) shrinks to the whole length when
        the task asks for fewer tokens than one block; otherwise the canvas is rounded up to whole blocks and the
        extra tokens are cut off afterwards (`_generate_batch`). Steps from the saved config are raised to one per
        block when there are more blocks than steps.
        """
        config = self.model.generation_config
        length = settings["max_new_tokens"]
        block_length = settings.get("block_length") or getattr(config, "block_length", None)
        if not block_length or block_length >= length:
            fitted = {"block_length": length}
        else:
            fitted = {"block_length": block_length, "max_new_tokens": -(-length // block_length) * block_length}
        steps = settings.get("steps") or getattr(config, "steps", None)
        num_blocks = (fitted.get("max_new_tokens") or length) // fitted["block_length"]
        if steps is not None and steps < num_blocks:
            fitted["steps"] = num_blocks
        return fitted

    def _generate_batch(self, contexts: List[str], gen_kwargs: dict) -> List[str]:
        settings, until, requested = self._generation_settings(gen_kwargs)
        room = self.max_length - settings["max_new_tokens"]
        if room < 1:
            raise ValueError(
                f"llada generate_until: max_new_tokens {settings['max_new_tokens']} leaves no room for "
                f"the prompt within max_length {self.max_length}."
            )
        prompts = [self.tok_encode(context)[-room:] for context in contexts]
        pad_id = self.model.config.pad_token_id if self.model.config.pad_token_id is not None else self.eot_token_id
        input_ids, attention_mask = left_pad(prompts, pad_id, self._device)  # (batch, width)
        width = input_ids.shape[1]
        with torch.no_grad():
            sequences = self.model.diffusion_generate(
                # `seed`: every row draws from its own stream (seeded by the seed and its prompt), so a request's
                # sample does not depend on the batch size or on the other requests of its batch
                input_ids=input_ids,
                attention_mask=attention_mask,
                seed=self.seed,
                **settings,
            )
        generated = sequences[:, width : width + requested].tolist()  # (batch, requested tokens)
        stop_ids = set(as_id_list(self.model.generation_config.eos_token_id) + as_id_list(self.eot_token_id))
        return [
            _cut_at_stop(self.tokenizer.decode(_cut_at_ids(row, stop_ids), skip_special_tokens=True), until)
            for row in generated
        ]


def _cut_at_ids(token_ids: List[int], stop_ids) -> List[int]:
    """Tokens before the first stop id (EOS / end of turn)."""
    for index, token_id in enumerate(token_ids):
        if token_id in stop_ids:
            return token_ids[:index]
    return token_ids


def _cut_at_stop(text: str, until: List[str]) -> str:
    """Text before the earliest stop sequence."""
    cut = len(text)
    for stop in until:
        if stop:
            position = text.find(stop)
            if position != -1:
                cut = min(cut, position)
    return text[:cut]


def _refuse_official_checkpoint(pretrained: str):
    """An official (OLMo-style) LLaDA folder would silently load wrong: ask for the conversion instead."""
    config_path = Path(pretrained) / "config.json"
    if config_path.is_file() and "d_model" in json.loads(config_path.read_text()):
        raise ValueError(
            f"{pretrained} is an official LLaDA checkpoint (OLMo-style config). Convert it first: "
            f"`llada-convert --src {pretrained} --dst CONVERTED`, then pass pretrained=CONVERTED."
        )
