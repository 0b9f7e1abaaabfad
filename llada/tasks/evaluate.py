"""Exact-match accuracy of a trained model on held-out puzzles, with the answers verified by the task's checker.

A LLaDA model fills a canvas of `max_new_tokens` masks after each prompt (one block, one token per forward unless a
parallel-decoding rule is set) and its answer is the text before the first EOS; an autoregressive model decodes
greedily. Both are scored by [`llada.tasks.Task.check`], so any correct answer counts (Countdown has several).

    from llada.tasks.evaluate import evaluate_model, load_model
    model, tokenizer = load_model("runs/stargraph")
    evaluate_model(model, tokenizer, "stargraph", rows, remasking="low_confidence")
    # {"accuracy": 0.98, "correct": 490, "total": 500, "tokens_per_forward": 1.0, "forwards_per_answer": 6.0}
"""

import time
from typing import Optional

import torch

from ..prepare_llada import left_pad
from . import get_task

# The remasking strategies the task tables compare: which masked position a LLaDA step commits first.
STRATEGIES = ("low_confidence", "margin", "entropy", "random", "left_to_right")


def load_model(path: str, device: str = "cpu"):
    """A saved LLaDA model or autoregressive baseline and its tokenizer, in eval mode."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from ..modeling_llada import LLaDAForMaskedDiffusion

    config = AutoConfig.from_pretrained(path)
    if getattr(config, "model_type", None) == "llada":
        model = LLaDAForMaskedDiffusion.from_pretrained(path)
    else:
        model = AutoModelForCausalLM.from_pretrained(path)
    return model.to(device).eval(), AutoTokenizer.from_pretrained(path)


def is_diffusion(model) -> bool:
    return getattr(model.config, "model_type", None) == "llada"


def answer_length(tokenizer, rows) -> int:
    """Canvas length that holds every answer of `rows` and its EOS."""
    return 1 + max(len(tokenizer(row["response"], add_special_tokens=False)["input_ids"]) for row in rows)


@torch.no_grad()
def generate_answers(model, tokenizer, prompts: list, max_new_tokens: int, batch_size: int = 128, **sampling):
    """The answers to `prompts` (text before the first EOS) and the forward calls spent, as
    `(answers, committed_positions, forward_rows)`: a LLaDA model's `tokens_per_forward` is their ratio.

    `sampling`: for a LLaDA model, options of `diffusion_generate` (defaults: greedy, one block of `max_new_tokens`,
    one token per step, `"low_confidence"`); an autoregressive model decodes greedily and takes none.
    """
    diffusion = is_diffusion(model)
    if not diffusion and sampling:
        raise ValueError(f"An autoregressive model decodes greedily; got sampling options {sorted(sampling)}.")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    answers, committed, forward_rows = [], 0, 0
    for start in range(0, len(prompts), batch_size):
        ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts[start : start + batch_size]]
        input_ids, attention_mask = left_pad(ids, pad_id, model.device)
        if diffusion:
            options = dict(
                max_new_tokens=max_new_tokens,
                steps=max_new_tokens,
                block_length=max_new_tokens,
                temperature=0.0,
                remasking="low_confidence",
            )
            options.update(sampling)
            out = model.diffusion_generate(
                input_ids, attention_mask=attention_mask, return_dict_in_generate=True, **options
            )
            sequences = out.sequences
            committed += out.tokens_per_forward * out.nfe * len(ids)
            forward_rows += out.nfe * len(ids)
        else:
            sequences = model.generate(
                input_ids,
                attention_mask=attention_mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            new = sequences[:, input_ids.shape[1] :]
            committed += int(new.numel())
            forward_rows += new.shape[1] * len(ids)
        for row in sequences[:, input_ids.shape[1] :].tolist():
            if tokenizer.eos_token_id in row:
                row = row[: row.index(tokenizer.eos_token_id)]
            answers.append(tokenizer.decode(row, skip_special_tokens=True))
    return answers, committed, forward_rows


def evaluate_model(
    model, tokenizer, task: str, rows: list, max_new_tokens: Optional[int] = None, batch_size: int = 128, **sampling
) -> dict:
    """Accuracy of `model` on `rows` (`{"prompt", "response"}`) of `task`, verified by the task's checker, with the
    tokens committed per forward call and the forward calls per answer. `sampling`: see [`generate_answers`]."""
    spec = get_task(task)
    if not rows:
        raise ValueError("evaluate_model: `rows` is empty; expected held-out puzzles.")
    max_new_tokens = max_new_tokens or answer_length(tokenizer, rows)
    began = time.perf_counter()
    answers, committed, forward_rows = generate_answers(
        model, tokenizer, [row["prompt"] for row in rows], max_new_tokens, batch_size, **sampling
    )
    correct = sum(spec.check(row["prompt"], answer) for row, answer in zip(rows, answers))
    return {
        "accuracy": correct / len(rows),
        "correct": correct,
        "total": len(rows),
        "tokens_per_forward": committed / max(1, forward_rows),
        "forwards_per_answer": forward_rows / len(rows),
        "seconds": time.perf_counter() - began,
        "answers": answers,
    }


__all__ = ["STRATEGIES", "answer_length", "evaluate_model", "generate_answers", "is_diffusion", "load_model"]
