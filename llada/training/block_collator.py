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
from .collator import DataCollatorForMaskedDiffusion, batch_seed


@dataclass
class DataCollatorForBlockDiffusion(DataCollatorForMaskedDiffusion):
    r"""
    [`DataCollatorForMaskedDiffusion`] with one diffusion time per block: the tokens of block `b` (positions
    `b * block_size ... (b + 1) * block_size - 1` of each row, counted over real tokens as the model counts them)
    are masked with probability `p_b = (1 - eps) t_b + eps`, `t_b ~ U(0, 1)` drawn independently per block, and
    `p_mask` holds each token's `p_b`. Everything else (padding, SFT prompts that are never masked, the random
    length cut, the seeded and worker-independent draws, `mask=False`) is the parent's.

    The loss `sum_masked CE / p_mask / (B L)` is then an unbiased estimate of BD3-LM's bound per token,
    `sum_b E_t[ (1/t) sum_{i in b masked} -log p(x_i | x_b,t, x_<b) ] / L`.

    Args:
        block_size (`int`): the model's `config.block_size`.
        (the others): see [`DataCollatorForMaskedDiffusion`].

    Random draws, in this order: the parent's random-length draws, then the block times `(batch * num_blocks,)`,
    then the token noise `(batch, seq)`.

    Example:

    ```python
    >>> collator = DataCollatorForBlockDiffusion(tokenizer=tokenizer, block_size=model.config.block_size)
    >>> trainer = Trainer(model=model, args=args, train_dataset=blocks, data_collator=collator)
    ```
    """

    block_size: Optional[int] = None

    def __post_init__(self):
        super().__post_init__()
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
        p_mask = (1.0 - self.eps) * t + self.eps  # (batch, seq)
        noise = torch.rand(input_ids.shape, generator=generator)  # (batch, seq)
        masked_indices = (noise < p_mask) & maskable  # (batch, seq)
        batch = {
            "input_ids": input_ids.masked_fill(masked_indices, self.mask_token_id),
            "attention_mask": attention_mask,
            "labels": input_ids.masked_fill(~masked_indices, -100),
            "p_mask": p_mask,
        }
        if sft:
            batch["answer_lengths"] = maskable.sum(dim=1)  # (batch,)
        return batch


__all__ = ["DataCollatorForBlockDiffusion"]
