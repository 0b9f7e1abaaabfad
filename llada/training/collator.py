"""`DataCollatorForMaskedDiffusion`: pads a list of examples and applies LLaDA's forward (masking) process.

It works with a plain `transformers.Trainer`: the batch it returns holds exactly the keyword arguments
`LLaDAForMaskedDiffusion.forward` takes for its loss.
"""

import hashlib
from dataclasses import dataclass
from typing import Any, Optional

import torch

from ..diffusion_llada import MASKING_SCHEMES, exact_count_masks, training_masks

TRAIN_T_SAMPLING = ("uniform", "stratified")


@dataclass
class DataCollatorForMaskedDiffusion:
    r"""
    Pads examples and masks them as in LLaDA's pre-training and SFT (Nie et al. 2025, Algorithms 1 and 2).

    For each sequence a time `t ~ U(0, 1)` is drawn and turned into a masking probability `p = (1 - eps) t + eps`;
    every maskable token is then replaced by the mask token with probability `p`, independently. The model's loss
    is `sum over masked tokens of CE / p`, divided by the number of token slots (pre-training) or, in SFT mode, by each
    answer's length.

    Random draws happen in this order: one uniform deciding the random-length truncation (only when
    `random_length_probability > 0`), and the length `U{1..L}` if truncating; then `t` (batch,); then the token
    noise (batch, seq). With a `seed`, they come from a generator seeded by `batch_seed(seed, input_ids)`: the masks
    of a batch are a function of the seed and the batch's tokens only, so they do not depend on which DataLoader
    worker or distributed rank collates it, nor on how far ahead the DataLoader prefetches, and a run resumed from
    a checkpoint sees exactly the masks of an uninterrupted one.

    Examples are dicts with `input_ids` (a list or 1-D tensor). In **SFT mode** they also carry `labels` with -100
    on the prompt and the token ids on the answer (the usual Hugging Face SFT convention); the prompt is never
    masked. SFT mode is switched on by `sft=True`, or automatically when the examples have `labels`.

    Args:
        tokenizer (`PreTrainedTokenizerBase`, *optional*):
            Supplies `mask_token_id`, `pad_token_id` and `eos_token_id` when those are not given.
        mask_token_id (`int`, *optional*): id written at masked positions.
        pad_token_id (`int`, *optional*): id used for padding (pre-training).
        eps (`float`, *optional*, defaults to 1e-3): smallest masking probability.
        random_length_probability (`float`, *optional*, defaults to 0.0):
            Probability that a batch is cut to a random length in `[1, L]`; LLaDA pre-training uses 0.01 so the
            model also sees short sequences.
        sft (`bool`, *optional*): SFT mode; `None` decides from the presence of `labels` in the examples.
        pad_answers_with_eos (`bool`, *optional*, defaults to `True`):
            SFT: pad with EOS tokens that are attended to and count as part of the answer, as LLaDA does, so the
            model learns to end its answers with EOS. With `False`, padding is ignored like in pre-training.
        seed (`int`, *optional*):
            Makes the masking deterministic (see above). `None` draws from torch's global generator instead. Note
            that with a seed, a batch of exactly the same rows in the same order (unshuffled data seen twice) is
            masked the same way again.
        mask (`bool`, *optional*, defaults to `True`):
            `False` returns clean, padded batches (what evaluation with the ELBO wants).
        pad_to_multiple_of (`int`, *optional*): pad the sequence length to a multiple of this.
        t_sampling (`str`, *optional*, defaults to `"uniform"`):
            How the batch's times are drawn: `"uniform"` (independent, LLaDA) or `"stratified"` (row k of B gets a
            uniform `t` in `[k / B, (k + 1) / B)`: the low-discrepancy sampler of MDLM, Sahoo et al. 2024, which
            lowers the variance of the batch loss; the rows arrive shuffled).
        masking (`str`, *optional*, defaults to `"bernoulli"`):
            `"bernoulli"`: every maskable token is masked independently with probability `p` (LLaDA). `"exact"`:
            exactly `k = ceil(t n)` of a row's `n` maskable tokens are masked, chosen uniformly, with weight `n / k`
            (`p_mask = k / n`). Both give the same ELBO in expectation (with `t` uniform, `k` is uniform on
            `1..n`, and the Bernoulli mixture weighs each count by `1 / k`); the exact count removes the binomial
            noise of the number masked, so the loss has a lower variance.
        complementary_masking (`bool`, *optional*, defaults to `False`):
            Return every sequence twice: once masked by the forward process at `t` and once with exactly its other
            maskable tokens masked (the forward process at `1 - t`), so each token is scored once per pair. With
            `masking="exact"`, a row masked whole (empty complement) has its `p_mask` halved: it counts twice, the
            weight the ELBO gives the fully masked count in a pair. The batch then has twice as many rows as
            examples.

    Returns (from `__call__`): a dict of tensors `input_ids` (batch, seq) with masks applied, `attention_mask`
    (batch, seq), `labels` (batch, seq) holding the clean token at masked positions and -100 elsewhere, `p_mask`
    (batch, seq) holding each sequence's masking probability, and in SFT mode `answer_lengths` (batch,).

    Example:

    ```python
    >>> collator = DataCollatorForMaskedDiffusion(tokenizer=tokenizer)
    >>> trainer = Trainer(model=model, args=args, train_dataset=blocks, data_collator=collator)
    ```
    """

    tokenizer: Any = None
    mask_token_id: Optional[int] = None
    pad_token_id: Optional[int] = None
    eps: float = 1e-3
    random_length_probability: float = 0.0
    sft: Optional[bool] = None
    pad_answers_with_eos: bool = True
    seed: Optional[int] = None
    mask: bool = True
    pad_to_multiple_of: Optional[int] = None
    t_sampling: str = "uniform"
    masking: str = "bernoulli"
    complementary_masking: bool = False

    def __post_init__(self):
        tokenizer = self.tokenizer
        if self.mask_token_id is None and tokenizer is not None:
            self.mask_token_id = tokenizer.mask_token_id
        if self.pad_token_id is None and tokenizer is not None:
            self.pad_token_id = (
                tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
            )
        self.eos_token_id = getattr(tokenizer, "eos_token_id", None) if tokenizer is not None else None
        if self.mask and self.mask_token_id is None:
            raise ValueError(
                "DataCollatorForMaskedDiffusion: no mask token id; pass `mask_token_id` or a tokenizer with a "
                "mask token (see llada.training.tokenizers.ensure_mask_token)."
            )
        if self.pad_token_id is None:
            self.pad_token_id = self.eos_token_id if self.eos_token_id is not None else 0
        if not 0.0 < self.eps < 1.0:
            raise ValueError(f"DataCollatorForMaskedDiffusion: `eps` must be in (0, 1), got {self.eps!r}.")
        if self.masking not in MASKING_SCHEMES:
            raise ValueError(
                f"DataCollatorForMaskedDiffusion: `masking` must be one of {MASKING_SCHEMES}, got {self.masking!r}."
            )
        if self.t_sampling not in TRAIN_T_SAMPLING:
            raise ValueError(
                f"DataCollatorForMaskedDiffusion: `t_sampling` must be one of {TRAIN_T_SAMPLING}, "
                f"got {self.t_sampling!r}."
            )
        if not 0.0 <= self.random_length_probability <= 1.0:
            raise ValueError(
                "DataCollatorForMaskedDiffusion: `random_length_probability` must be in [0, 1], "
                f"got {self.random_length_probability!r}."
            )

    # ----------------------------------------------------------------------------------------------------------

    def __call__(self, examples: list) -> dict:
        sft = self.sft if self.sft is not None else "labels" in examples[0]
        input_ids, attention_mask, maskable = self._pad(examples, sft)  # each (batch, seq)
        if not self.mask:
            batch = {"input_ids": input_ids, "attention_mask": attention_mask}
            if sft:  # the scored (answer) positions, for the ELBO of the answer given the prompt
                batch["labels"] = torch.where(maskable, input_ids, torch.full_like(input_ids, -100))
            return batch
        generator = None if self.seed is None else torch.Generator().manual_seed(batch_seed(self.seed, input_ids))
        input_ids, attention_mask, maskable = self._maybe_truncate(input_ids, attention_mask, maskable, generator)
        batch_size, seq_len = input_ids.shape

        masked_indices, p_mask, complement, complement_p, unscored = self._forward_process(maskable, generator)
        clean_ids = input_ids
        if complement is not None:
            # Each sequence a second time with exactly the other maskable tokens masked: that copy is the forward
            # process at time 1 - t, and every token is scored once per pair.
            input_ids, attention_mask, maskable = (torch.cat([x, x]) for x in (input_ids, attention_mask, maskable))
            masked_indices = torch.cat([masked_indices, complement])
            p_mask = torch.cat([p_mask, complement_p.to(p_mask.dtype)])
            batch_size *= 2
        noisy_ids = input_ids.masked_fill(masked_indices, self.mask_token_id)

        scored = masked_indices if unscored is None else masked_indices & ~unscored
        labels = torch.where(scored, input_ids, torch.full_like(input_ids, -100))
        batch = {
            "input_ids": noisy_ids,
            "attention_mask": attention_mask,
            "labels": labels,
            "p_mask": p_mask.expand(batch_size, seq_len).contiguous(),
        }
        if sft:
            batch["answer_lengths"] = maskable.sum(dim=1)  # (batch,) tokens the answer (with EOS padding) spans
        batch.update(self._extra_fields(clean_ids, complement is not None))
        return batch

    def _extra_fields(self, clean_ids: torch.Tensor, complementary: bool) -> dict:
        """More model inputs from the clean `(batch, seq)` ids (one row per sequence); none here."""
        return {}

    # ----------------------------------------------------------------------------------------------------------

    def _forward_process(self, maskable, generator):
        """The masks of rows `(rows, n)` (see [`training_masks`]: `t_sampling` across the rows, the masking scheme,
        the complementary masks). Returns `(masked_indices, p_mask, complement, complement_p, unscored)`: the
        `(rows, n)` masks and `(rows, 1)` masking probabilities, with `complementary_masking` those of the
        complementary copies (else `None, None`), and `unscored`: None (every masked position is scored) or the
        `(rows or 2 rows, n)` masked positions that get no label (in the order of the batch: the rows, then their
        complements)."""
        masks = training_masks(
            maskable, self.t_sampling, self.masking, self.complementary_masking, self.eps, generator
        )
        return (*masks, None)

    def _pad(self, examples: list, sft: bool):
        """Right-pads to the longest example; returns ids, attention mask and which positions may be masked."""
        rows = [_as_long_list(example["input_ids"], "input_ids") for example in examples]
        lengths = [len(row) for row in rows]
        if min(lengths) == 0:
            raise ValueError("DataCollatorForMaskedDiffusion: got an example with empty `input_ids`.")
        seq_len = max(lengths)
        if self.pad_to_multiple_of:
            seq_len = -(-seq_len // self.pad_to_multiple_of) * self.pad_to_multiple_of
        pad_with_eos = sft and self.pad_answers_with_eos and self.eos_token_id is not None
        pad_id = self.eos_token_id if pad_with_eos else self.pad_token_id
        input_ids = torch.full((len(rows), seq_len), pad_id, dtype=torch.long)  # (batch, seq)
        real = torch.zeros(len(rows), seq_len, dtype=torch.bool)  # (batch, seq) True on the example's own tokens
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            real[i, : len(row)] = True
        if not sft:
            return input_ids, real.long(), real
        answer = torch.zeros_like(real)  # (batch, seq) True on answer tokens
        for i, example in enumerate(examples):
            labels = _as_long_list(example["labels"], "labels")
            if len(labels) != lengths[i]:
                raise ValueError(
                    f"DataCollatorForMaskedDiffusion: example {i} has {lengths[i]} input_ids but {len(labels)} labels."
                )
            answer[i, : len(labels)] = torch.tensor(labels, dtype=torch.long) != -100
        if pad_with_eos:  # LLaDA SFT: EOS padding is attended to and is part of the answer
            return input_ids, torch.ones_like(input_ids), answer | ~real
        return input_ids, real.long(), answer

    def _maybe_truncate(self, input_ids, attention_mask, maskable, generator):
        """LLaDA's random-length batches: with probability `random_length_probability`, keep a random prefix."""
        if self.random_length_probability <= 0.0:
            return input_ids, attention_mask, maskable
        if torch.rand(1, generator=generator).item() >= self.random_length_probability:
            return input_ids, attention_mask, maskable
        length = int(torch.randint(1, input_ids.shape[1] + 1, (1,), generator=generator).item())
        return input_ids[:, :length], attention_mask[:, :length], maskable[:, :length]


def batch_seed(seed: int, input_ids: torch.Tensor) -> int:
    """A 63-bit seed derived from `seed` and the padded batch `input_ids` (batch, seq) with BLAKE2b."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(int(seed).to_bytes(8, "little", signed=True))
    digest.update(str(tuple(input_ids.shape)).encode())
    digest.update(input_ids.to(torch.int64).contiguous().numpy().tobytes())
    return int.from_bytes(digest.digest(), "little") & (2**63 - 1)


def _as_long_list(values, name: str) -> list:
    if isinstance(values, torch.Tensor):
        if values.dim() != 1:
            raise ValueError(
                f"DataCollatorForMaskedDiffusion: `{name}` must be 1-D per example, got {tuple(values.shape)}."
            )
        return values.tolist()
    return list(values)


__all__ = ["MASKING_SCHEMES", "TRAIN_T_SAMPLING", "DataCollatorForMaskedDiffusion", "batch_seed", "exact_count_masks"]
