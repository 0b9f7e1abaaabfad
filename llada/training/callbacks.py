"""Trainer callbacks: a few generated samples at every evaluation, and the loss-curve plot at the end of training."""

import logging
import os
from typing import Optional

import torch
from tqdm.auto import tqdm
from transformers import TrainerCallback


logger = logging.getLogger(__name__)

LOSS_CURVE_FILE = "loss_curve.png"
SAMPLES_FILE = "samples.txt"


class SampleGenerationCallback(TrainerCallback):
    r"""
    At every evaluation, generates a continuation of a few fixed prompts and shows them on the console, in
    TensorBoard (text tab, tag `samples`) and in `output_dir/samples.txt`.

    LLaDA models sample with `model.diffusion_generate`; causal LMs (the baseline) with `model.generate`. The seed
    is fixed, so samples at successive evaluations differ only because the model changed.

    Args:
        prompts (`list[list[int]]`): token ids of each prompt.
        tokenizer: decodes the samples.
        max_new_tokens (`int`), steps (`int`, *optional*), block_length (`int`, *optional*), temperature (`float`),
        seed (`int`), remasking (`str`): sampling settings.
    """

    def __init__(self, prompts, tokenizer, max_new_tokens=128, steps=None, block_length=None, temperature=0.8,
                 seed=0, remasking="low_confidence"):
        self.prompts = [list(p) for p in prompts]
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.steps = steps or max_new_tokens
        self.block_length = block_length
        self.temperature = temperature
        self.seed = seed
        self.remasking = remasking
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
            input_ids, attention_mask = self._left_padded_prompts(next(model.parameters()).device)
            max_new_tokens, steps, block_length = self._fit_to_positions(model, input_ids.shape[1])
            if max_new_tokens < 1:
                return self._skip("the prompts fill the model's positions")
            if hasattr(model, "diffusion_generate"):
                sequences = model.diffusion_generate(
                    input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens,
                    steps=steps, block_length=block_length, temperature=self.temperature, seed=self.seed,
                    remasking=self.remasking,
                )
            elif getattr(model.config, "model_type", None) == "llada":
                return self._skip("this model has no `diffusion_generate` yet")
            else:
                torch.manual_seed(self.seed)
                sequences = model.generate(
                    input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens,
                    do_sample=self.temperature > 0, temperature=self.temperature or None, top_k=None, top_p=None,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
        except (NotImplementedError, TypeError, ValueError, RuntimeError) as error:
            return self._skip(f"generation failed ({type(error).__name__}: {error})")
        finally:
            model.train(was_training)
        if hasattr(sequences, "sequences"):
            sequences = sequences.sequences
        return [self.tokenizer.decode(row[attention_mask.shape[1] - len(prompt):], skip_special_tokens=True)
                for row, prompt in zip(sequences.tolist(), self.prompts)]

    def _fit_to_positions(self, model, prompt_length: int):
        """`max_new_tokens`, `steps`, `block_length` shrunk so prompt + samples fit `max_position_embeddings`."""
        limit = getattr(model.config, "max_position_embeddings", None) or (prompt_length + self.max_new_tokens)
        max_new_tokens = min(self.max_new_tokens, limit - prompt_length)
        block_length = self.block_length if self.block_length and self.block_length <= max_new_tokens else None
        if block_length:
            max_new_tokens -= max_new_tokens % block_length  # blocks must tile the generation
        steps = max(1, round(self.steps * max_new_tokens / self.max_new_tokens)) if max_new_tokens > 0 else 1
        if block_length:
            steps = max(steps, max_new_tokens // block_length)
        return max_new_tokens, steps, block_length

    def _left_padded_prompts(self, device):
        width = max(len(p) for p in self.prompts)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(self.prompts), width), pad, dtype=torch.long)  # (batch, prompt)
        attention_mask = torch.zeros_like(input_ids)
        for i, prompt in enumerate(self.prompts):
            input_ids[i, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
            attention_mask[i, width - len(prompt):] = 1
        return input_ids.to(device), attention_mask.to(device)

    def _skip(self, reason: str):
        if not self._warned:
            logger.warning("Skipping samples during evaluation: %s.", reason)
            self._warned = True
        return None


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


__all__ = ["LOSS_CURVE_FILE", "LossCurveCallback", "SAMPLES_FILE", "SampleGenerationCallback", "plot_loss_curve"]
