"""`DataCollatorForBlockDiffusion`: the masking of block diffusion training (BD3-LM, Arriola et al. 2025).

A block model (`LLaDAConfig(block_size=...)`) is trained on every block at once: the model runs the noised rows and
their clean copy in one pass (`LLaDAForMaskedDiffusion.forward` rebuilds the clean copy from `labels`), each noised
block predicted from itself and the clean blocks before it. What changes in the data is the noise: every block
draws its own diffusion time, since the bound is a sum of one masked-diffusion ELBO per block.
"""

from dataclasses import dataclass
from typing import Optional

import torch

from ..evaluation import block_times
from ..modeling_llada import forward_process
from .collator import DataCollatorForMaskedDiffusion, batch_seed

BLOCK_MASKING = ("bernoulli", "exact")


@dataclass
class DataCollatorForBlockDiffusion(DataCollatorForMaskedDiffusion):
    r"""
    [`DataCollatorForMaskedDiffusion`] with one diffusion time per block. Blocks are positions
    `b * block_size ... (b + 1) * block_size - 1` of each row, counted over real tokens as the model counts them; each
    draws its own `t_b ~ U(0, 1)`, independently. With the default `masking="exact"`, block `b` then masks exactly
    `k_b = ceil(t_b n_b)` of its `n_b` maskable tokens (`k_b` uniform on `1..n_b`), chosen uniformly at random, and
    `p_mask = k_b / n_b`; with `masking="bernoulli"` each of its tokens is masked with probability
    `p_b = (1 - eps) t_b + eps` and `p_mask = p_b`. Everything else (padding, SFT prompts that are never masked, the
    random length cut, the seeded and worker-independent draws, `mask=False`) is the parent's.

    Either way the loss `sum_masked CE / p_mask / (B L)` is an unbiased estimate of BD3-LM's bound per token,
    `sum_b E_t[ (1/t) sum_{i in b masked} -log p(x_i | x_b,t, x_<b) ] / L`; the exact form is LLaDA's
    lower-variance one, `E_k[(n / k) sum_masked -log p]`, whose weights stay at most `n_b` (the Bernoulli form's
    `1 / p` reaches `1 / eps`).

    Args:
        block_size (`int`): the model's `config.block_size`.
        masking (`str`, *optional*, defaults to `"exact"`): `"exact"` or `"bernoulli"` (see above); at the main
            job's size and budget the exact form trains the better model (`benchmarks/block_quality.py`).
        (the others): see [`DataCollatorForMaskedDiffusion`].

    Random draws, in this order: the parent's random-length draws, then the block times `(batch * num_blocks,)`,
    then the token noise `(batch, seq)` (in both modes).

    Example:

    ```python
    >>> collator = DataCollatorForBlockDiffusion(tokenizer=tokenizer, block_size=model.config.block_size)
    >>> trainer = Trainer(model=model, args=args, train_dataset=blocks, data_collator=collator)
    ```
    """

    block_size: Optional[int] = None
    masking: str = "exact"

    def __post_init__(self):
        super().__post_init__()
        if self.masking not in BLOCK_MASKING:
            raise ValueError(
                f"DataCollatorForBlockDiffusion: `masking` must be one of {BLOCK_MASKING}, got {self.masking!r}."
            )
        if not (isinstance(self.block_size, int) and not isinstance(self.block_size, bool) and self.block_size > 0):
            raise ValueError(
                f"DataCollatorForBlockDiffusion: `block_size` must be a positive integer (the model's "
                f"config.block_size), got {self.block_size!r}."
            )

    def __call__(self, examples: list) -> dict:
        if not self.mask:
            return super().__call__(examples)
        sft = self.sft if self.sft is not None else "labels" in examples[0]
        input_ids, attention_mask, maskable = self._pad(examples, sft)  # each (batch, seq)
        generator = None if self.seed is None else torch.Generator().manual_seed(batch_seed(self.seed, input_ids))
        input_ids, attention_mask, maskable = self._maybe_truncate(input_ids, attention_mask, maskable, generator)

        t = block_times(attention_mask, self.block_size, 1, "uniform", generator)[0]  # (batch, seq) its block's t
        if self.masking == "exact":
            masked_indices, p_mask = self._exact_counts(t, attention_mask, maskable, generator)
        else:
            _, masked_indices, p_mask = forward_process(input_ids, t, self.mask_token_id, maskable, self.eps, generator)
        batch = {
            "input_ids": input_ids.masked_fill(masked_indices, self.mask_token_id),
            "attention_mask": attention_mask,
            "labels": input_ids.masked_fill(~masked_indices, -100),
            "p_mask": p_mask.expand(input_ids.shape).contiguous(),
        }
        if sft:
            batch["answer_lengths"] = maskable.sum(dim=1)  # (batch,)
        return batch


    def _exact_counts(self, t, attention_mask, maskable, generator):
        """`masking="exact"`: in each block, `k = ceil(t n)` of its `n` maskable tokens (k uniform on 1..n), chosen
        uniformly at random; `p_mask = k / n`. Returns `(masked_indices, p_mask)`, both `(batch, seq)`."""
        blocks = (attention_mask.long().cumsum(-1) - 1).clamp(min=0) // self.block_size  # (batch, seq)
        per_block = torch.zeros(blocks.shape[0], int(blocks.max()) + 1, dtype=torch.long)  # (batch, num_blocks)
        block_tokens = per_block.scatter_add(1, blocks, torch.ones_like(blocks))  # tokens of each block
        block_start = (block_tokens.cumsum(1) - block_tokens).gather(1, blocks)  # (batch, seq): tokens before it
        maskable_tokens = per_block.scatter_add(1, blocks, maskable.long()).gather(1, blocks)  # n of its block
        noise = torch.rand(blocks.shape, generator=generator)  # (batch, seq)
        # sort by block, then maskable tokens by their noise: the rank inside the block picks k of them at random
        order_key = blocks * 4.0 + noise.masked_fill(~maskable, 3.0)
        rank_in_block = order_key.argsort(dim=1).argsort(dim=1) - block_start  # (batch, seq)
        count = torch.ceil(t * maskable_tokens).clamp(min=1)  # (batch, seq): k of the token's block
        masked_indices = maskable & (rank_in_block < count)
        return masked_indices, count / maskable_tokens.clamp(min=1)


__all__ = ["DataCollatorForBlockDiffusion"]
