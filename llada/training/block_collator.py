"""`DataCollatorForBlockDiffusion`: the masking of block diffusion training (BD3-LM, Arriola et al. 2025).

A block model (`LLaDAConfig(block_size=...)`) is trained on every block at once: the model runs the noised rows and
their clean copy in one pass (`LLaDAForMaskedDiffusion.forward` rebuilds the clean copy from `labels`), each noised
block predicted from itself and the clean blocks before it. What changes in the data is the noise: every block
draws its own diffusion time, since the bound is a sum of one masked-diffusion ELBO per block.
"""

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from .collator import DataCollatorForMaskedDiffusion


@dataclass
class DataCollatorForBlockDiffusion(DataCollatorForMaskedDiffusion):
    r"""
    [`DataCollatorForMaskedDiffusion`] with one diffusion time per block: the parent's forward process runs with
    every block of every row as one row of its own. Blocks are columns `b * block_size ... (b + 1) * block_size - 1`
    of the right-padded batch, which is how the model counts them (positions over real tokens, `position_ids //
    block_size`). Each block draws its own `t_b` (`t_sampling="stratified"`: stratified across all the blocks of the
    batch). With the default `masking="exact"`, block `b` then masks exactly `k_b = ceil(t_b n_b)` of its `n_b`
    maskable tokens (`k_b` uniform on `1..n_b`), chosen uniformly at random, and `p_mask = k_b / n_b`; with
    `masking="bernoulli"` each of its tokens is masked with probability `p_b = (1 - eps) t_b + eps` and
    `p_mask = p_b`. A block with nothing to mask (an SFT prompt, padding) masks nothing. `complementary_masking`
    adds the copy with each block's other maskable tokens masked (a block masked whole counts twice, so that the
    pair's loss stays the bound); the two copies of a sequence then share one clean copy in the model's pass
    (`shared_clean_copy`: the batch carries `clean_input_ids`, one row per sequence, so a step runs 3 sequence
    lengths per sequence instead of 4, for the same loss). Everything else (padding, SFT prompts that are never
    masked, the random length cut, the seeded and worker-independent draws, `mask=False`) is the parent's.

    Either way the loss `sum_masked CE / p_mask / (B L)` is an unbiased estimate of BD3-LM's bound per token,
    `sum_b E_t[ (1/t) sum_{i in b masked} -log p(x_i | x_b,t, x_<b) ] / L`; the exact form is LLaDA's
    lower-variance one, `E_k[(n / k) sum_masked -log p]`, whose weights stay at most `n_b` (the Bernoulli form's
    `1 / p` reaches `1 / eps`).

    Args:
        block_size (`int`): the model's `config.block_size`.
        masking (`str`, *optional*, defaults to `"exact"`): `"exact"` or `"bernoulli"` (see above); at the main
            job's size and budget the exact form trains the better model (`benchmarks/block_quality.py`).
        shared_clean_copy (`bool`, *optional*, defaults to `True`): with `complementary_masking`, one clean copy
            per sequence for both noised copies (`clean_input_ids` in the batch). `False`: the model rebuilds a
            clean copy per row from `labels` (the same loss, about a third more work per step).
        (the others): see [`DataCollatorForMaskedDiffusion`].

    Random draws, in this order: the parent's random-length draws, then the block times `(batch * num_blocks,)`,
    then the token noise `(batch * num_blocks, block_size)`.

    Example:

    ```python
    >>> collator = DataCollatorForBlockDiffusion(tokenizer=tokenizer, block_size=model.config.block_size)
    >>> trainer = Trainer(model=model, args=args, train_dataset=blocks, data_collator=collator)
    ```
    """

    block_size: Optional[int] = None
    masking: str = "exact"
    shared_clean_copy: bool = True

    def __post_init__(self):
        super().__post_init__()
        if not (isinstance(self.block_size, int) and not isinstance(self.block_size, bool) and self.block_size > 0):
            raise ValueError(
                f"DataCollatorForBlockDiffusion: `block_size` must be a positive integer (the model's "
                f"config.block_size), got {self.block_size!r}."
            )

    def __call__(self, examples: list) -> dict:
        batch = super().__call__(examples)
        if self.mask and self.complementary_masking and self.shared_clean_copy:
            rows = batch["input_ids"].shape[0] // 2  # [masked rows; their complements]: the same sequences
            clean = torch.where(batch["labels"] != -100, batch["labels"], batch["input_ids"])
            batch["clean_input_ids"] = clean[:rows]  # (batch, seq)
        return batch

    def _forward_process(self, input_ids, maskable, generator):
        """The parent's forward process with each block as a row: `(batch, seq)` in, the same four results out, each
        `(batch, seq)` (or None)."""
        batch, seq = input_ids.shape
        size = self.block_size
        width = -(-seq // size) * size  # whole blocks: the last one is padded with unmaskable positions
        block_rows = [F.pad(x, (0, width - seq), value=0).reshape(-1, size) for x in (input_ids, maskable)]
        results = super()._forward_process(*block_rows, generator)  # (batch * num_blocks, size or 1) each
        return tuple(None if x is None else x.expand(-1, size).reshape(batch, width)[:, :seq] for x in results)


__all__ = ["DataCollatorForBlockDiffusion"]
