"""Trainer callbacks: a few generated samples at every evaluation, and the loss-curve plot at the end of training."""

import logging
import os
from typing import Optional

import torch
from tqdm.auto import tqdm
from transformers import TrainerCallback

from ..prepare_llada import left_pad
from .block_collator import DataCollatorForBlockDiffusion

logger = logging.getLogger(__name__)

LOSS_CURVE_FILE = "loss_curve.png"
SAMPLES_FILE = "samples.txt"


class SampleGenerationCallback(TrainerCallback):
    r"""
    At every evaluation, generates a continuation of a few fixed prompts and shows them on the console, in
    TensorBoard (text tab, tag `samples`) and in `output_dir/samples.txt`.

    LLaDA models sample with `model.diffusion_generate` and their own `model.generation_config` (which
    [`fit_generation_config`] makes the `sample_*` training arguments); causal LMs (the baseline) with
    `model.generate` and the `generation_config` given here. The length is shrunk when prompt and samples would
    not fit the model's positions. The seed is fixed, so samples at successive evaluations differ only because the
    model changed.

    Args:
        prompts (`list[list[int]]`): token ids of each prompt.
        tokenizer: decodes the samples.
        seed (`int`): seed of the sampling.
        generation_config (`GenerationConfig`, *optional*): the settings of a causal LM's samples; default: the
            model's own.
    """

    def __init__(self, prompts, tokenizer, seed=0, generation_config=None):
        self.prompts = [list(p) for p in prompts]
        self.tokenizer = tokenizer
        self.seed = seed
        self.generation_config = generation_config
        self.tensorboard_callback = None  # set by the trainer when TensorBoard logging is on
        self._warned = False

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero or model is None or not self.prompts:
            return
        texts = self.generate(model)
        if texts is None:
            return
        header = f"samples at step {state.global_step}"
        body = "\n".join(f"--- sample {i} ---\n{text}" for i, text in enumerate(texts))
        tqdm.write(f"\n===== {header} =====\n{body}\n")
        with open(os.path.join(args.output_dir, SAMPLES_FILE), "a", encoding="utf-8") as handle:
            handle.write(f"===== {header} =====\n{body}\n\n")
        writer = getattr(self.tensorboard_callback, "tb_writer", None)
        if writer is not None:  # TensorBoard renders markdown: keep line breaks with a code block
            writer.add_text("samples", "\n\n".join(f"```\n{t}\n```" for t in texts), state.global_step)
            writer.flush()

    @torch.no_grad()
    def generate(self, model) -> Optional[list]:
        """Decoded prompt + continuation of each prompt, or None when the model cannot generate (yet)."""
        was_training = model.training
        model.eval()
        try:
            pad_token_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
            input_ids, attention_mask = left_pad(self.prompts, pad_token_id, next(model.parameters()).device)
            config = self.generation_config or model.generation_config
            positions = getattr(model.config, "max_position_embeddings", None)
            room = positions - input_ids.shape[1] if positions else config.max_new_tokens
            max_new_tokens, steps, block_length = fit_generation_length(
                config.max_new_tokens, getattr(config, "steps", None), getattr(config, "block_length", None), room
            )
            if max_new_tokens < 1:
                return self._skip("the prompts fill the model's positions")
            if hasattr(model, "diffusion_generate"):
                sequences = model.diffusion_generate(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    generation_config=config,
                    max_new_tokens=max_new_tokens,
                    steps=steps,
                    block_length=block_length,
                    seed=self.seed,
                )
            elif getattr(model.config, "model_type", None) == "llada":
                return self._skip("this model has no `diffusion_generate` yet")
            else:
                torch.manual_seed(self.seed)
                sequences = model.generate(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    generation_config=config,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
        except (NotImplementedError, TypeError, ValueError, RuntimeError) as error:
            return self._skip(f"generation failed ({type(error).__name__}: {error})")
        finally:
            model.train(was_training)
        if hasattr(sequences, "sequences"):
            sequences = sequences.sequences
        return [
            self.tokenizer.decode(row[attention_mask.shape[1] - len(prompt) :], skip_special_tokens=True)
            for row, prompt in zip(sequences.tolist(), self.prompts)
        ]

    def _skip(self, reason: str):
        if not self._warned:
            logger.warning("Skipping samples during evaluation: %s.", reason)
            self._warned = True
        return None


def fit_generation_length(max_new_tokens: int, steps: Optional[int], block_length: Optional[int], room: int):
    """
    `(max_new_tokens, steps, block_length)` shrunk so that the generation fits in `room` positions: at most `room`
    tokens in whole blocks (a block longer than that is dropped: one block), `steps` scaled down with the length
    and at least one per block (`None`, one step per token, stays `None`). `max_new_tokens` < 1: nothing fits.
    """
    fitted = min(max_new_tokens, room)
    block_length = block_length if block_length and block_length <= fitted else None
    if block_length:
        fitted -= fitted % block_length  # blocks must tile the generation
    if steps is not None and fitted > 0:
        steps = max(1, round(steps * fitted / max_new_tokens)) if fitted < max_new_tokens else steps
        steps = max(steps, fitted // block_length) if block_length else steps
    return fitted, steps, block_length


class LossCurveCallback(TrainerCallback):
    """Writes `output_dir/loss_curve.png` (training and evaluation loss against steps) when training ends."""

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            path = plot_loss_curve(state.log_history, os.path.join(args.output_dir, LOSS_CURVE_FILE))
            tqdm.write(f"Loss curve written to {path}")


def plot_loss_curve(log_history: list, path: str, title: str = "Training") -> str:
    """
    Plots `loss` and `eval_loss` (and the perplexity bound or perplexity on a second axis when logged) from a
    Trainer `log_history` into a PNG at `path`; returns `path`.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e and "step" in e]
    evals = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e and "step" in e]
    figure, axis = plt.subplots(figsize=(7, 4.2))
    if train:
        axis.plot(*zip(*train), label="train loss", color="tab:blue", alpha=0.8)
    if evals:
        axis.plot(*zip(*evals), "o-", label="eval loss", color="tab:red")
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    if train or evals:
        axis.legend()
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


class InOrderScheduleCallback(TrainerCallback):
    """Moves a block collator's `in_order_probability` linearly from `start` (the first step) to `end` (the last),
    set before each step's batch is drawn (`on_step_begin`; a batch drawn ahead sees the previous step's share)."""

    def __init__(self, collator: DataCollatorForBlockDiffusion, start: float, end: float):
        self.collator, self.start, self.end = collator, start, end

    def share(self, step: int, max_steps: int) -> float:
        return self.start + (self.end - self.start) * min(step / max(max_steps - 1, 1), 1.0)

    def on_step_begin(self, args, state, control, **kwargs):
        self.collator.in_order_probability = self.share(state.global_step, state.max_steps)

    on_train_begin = on_step_begin  # the first batch is drawn before the first step begins (and after a resume)


__all__ = [
    "InOrderScheduleCallback",
    "LOSS_CURVE_FILE",
    "LossCurveCallback",
    "SAMPLES_FILE",
    "SampleGenerationCallback",
    "fit_generation_length",
    "plot_loss_curve",
]
