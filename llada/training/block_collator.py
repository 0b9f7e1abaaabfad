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

from ..diffusion_llada import in_order_blocks
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
            job's size and budget the exact form trains the better model (`experiments/block_quality.py`).
        shared_clean_copy (`bool`, *optional*, defaults to `True`): with `complementary_masking`, one clean copy
            per sequence for both noised copies (`clean_input_ids` in the batch). `False`: the model rebuilds a
            clean copy per row from `labels` (the same loss, a step about a fifth dearer).
        in_order_probability (`float`, *optional*, defaults to 0): the share of blocks trained on the in-order
            likelihood instead of the bound: such a block masks its maskable tokens from a uniform `j` on and scores
            only `j`, weight `n` (see `llada.diffusion_llada.in_order_blocks`), so the loss is
            `(1 - share) * bound + share * in-order NLL`, the exact likelihood of the `left_to_right` sampler
            (`llada.evaluation.in_order_perplexity`).
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
    in_order_probability: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        if not (isinstance(self.block_size, int) and not isinstance(self.block_size, bool) and self.block_size > 0):
            raise ValueError(
                f"DataCollatorForBlockDiffusion: `block_size` must be a positive integer (the model's "
                f"config.block_size), got {self.block_size!r}."
            )
        if isinstance(self.in_order_probability, bool) or not 0.0 <= self.in_order_probability <= 1.0:
            raise ValueError(
                "DataCollatorForBlockDiffusion: `in_order_probability` must be a number in [0, 1], "
                f"got {self.in_order_probability!r}."
            )

    def _extra_fields(self, clean_ids: torch.Tensor, complementary: bool) -> dict:
        # both noised copies of a sequence attend to one clean copy: (batch, seq), one row per sequence
        return {"clean_input_ids": clean_ids} if complementary and self.shared_clean_copy else {}

    def _forward_process(self, maskable, generator):
        """The parent's forward process with each block as a row: `(batch, seq)` in, the same five results out,
        each `(batch, seq)` (or `(2 batch, seq)` for `unscored`, or None); a share `in_order_probability` of the
        blocks in order ([`in_order_blocks`])."""
        batch, seq = maskable.shape
        size = self.block_size
        width = -(-seq // size) * size  # whole blocks: the last one is padded with unmaskable positions
        block_rows = F.pad(maskable, (0, width - seq), value=0).reshape(-1, size)  # (batch * num_blocks, size)
        results = super()._forward_process(block_rows, generator)  # (batch * num_blocks, size or 1) each
        if self.in_order_probability > 0:
            results = in_order_blocks(block_rows.bool(), *results[:4], self.in_order_probability, generator)
        *noise, unscored = [None if x is None else x.expand(-1, size).reshape(-1, width)[:, :seq] for x in results]
        return (*noise, unscored)


__all__ = ["DataCollatorForBlockDiffusion"]
