"""The rows of a sampling call's batch: which still go through the model, which are finished, and where each row's
random draws come from.

- [`RunningRows`]: the rows that still run. A row whose generated part holds no masked position leaves the forward
  batch (and the cache) for good; every subsetting of a `(batch, ...)` tensor to the running rows, and every write
  back, goes through it.
- Finished rows and EOS: [`rows_done`] / [`fill_finished_rows`] (`early_stop`: a row with a committed EOS and nothing
  undecided before it is done, its masked positions become padding) and [`pad_after_eos`] (what follows a row's first
  EOS in the output).
- [`RandomDraws`]: the source of the sampler's uniform float64 draws, one stream per row with `seed=` (seeded from
  the seed, the row's prompt and its index among the copies of that prompt, and drawn only at steps where the row
  has a masked position in the block: a row samples the same alone or in any batch) or one stream for the batch
  with a `generator` (each draw made for the whole batch, as LLaDA does); [`SlotDraws`], the draws of a step on some
  positions of the block only.
- [`ConfidenceCredit`]: credit decoding's state, a confidence per row and block position carried from step to step.

This is a Hub file: it imports only the standard library and torch.
"""

from typing import Optional

import torch


class RunningRows:
    """The rows of the batch that still go through the model: all of them until some finish, then an index.

    Rows whose generated part holds no masked position leave the forward batch for good. Every subsetting of a
    (batch, ...) tensor to the running rows, and every write back, goes through this object.
    """

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self.index = None  # (rows,) indices into the batch; None while every row runs

    def take(self, tensor: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """(batch, ...) -> (rows, ...); None passes."""
        return tensor if self.index is None or tensor is None else tensor[self.index]

    def put(self, full: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
        """`full` (batch, ...) with the running rows replaced by `part` (rows, ...)."""
        return part if self.index is None else full.index_copy(0, self.index, part)

    def drop_finished(self, unfinished: torch.Tensor) -> Optional[torch.Tensor]:
        """Drops the rows that are not `unfinished` (batch,) bool. Returns the positions, among the rows that were
        running, of those that stay; None when no row left."""
        if self.index is None:
            if bool(unfinished.all()):
                return None
            self.index = torch.arange(self.batch_size, device=unfinished.device)
        still_running = unfinished[self.index]  # (rows,)
        if bool(still_running.all()):
            return None
        keep = still_running.nonzero().squeeze(-1)
        self.index = self.index[keep]
        return keep


def rows_done(generated: torch.Tensor, mask_token_id: int, eos_token_ids) -> torch.Tensor:
    """Early stop: (batch, n) generated tokens -> (batch,) bool, True where the row has a committed EOS and no
    masked position before its first EOS (nothing the row will return is still undecided)."""
    eos = torch.as_tensor(eos_token_ids, device=generated.device).view(-1)
    is_eos = torch.isin(generated, eos)  # (batch, n)
    before_first_eos = is_eos.long().cumsum(dim=-1) == 0
    undecided = (generated == mask_token_id) & before_first_eos
    return is_eos.any(dim=-1) & ~undecided.any(dim=-1)


def fill_finished_rows(
    generated: torch.Tensor, mask_token_id: int, eos_token_ids, pad_token_id: int, ready: Optional[torch.Tensor] = None
) -> None:
    """Early stop, in place on the generated part (batch, n) of the canvas: the masked positions of rows that are
    done ([`rows_done`]) become padding; they would become padding after the first EOS anyway. `ready` (batch,)
    bool, *optional*: only these rows may be done (those whose prompt has no mask token left to fill)."""
    done = rows_done(generated, mask_token_id, eos_token_ids)  # (batch,)
    if ready is not None:
        done &= ready
    generated.masked_fill_(done.unsqueeze(-1) & (generated == mask_token_id), pad_token_id)


def pad_after_eos(tokens: torch.Tensor, eos_token_ids, pad_token_id: int) -> torch.Tensor:
    """Replaces every token after a row's first EOS by `pad_token_id`, (batch, n) -> (batch, n)."""
    eos = torch.as_tensor(eos_token_ids, device=tokens.device).view(-1)
    is_eos = torch.isin(tokens, eos).long()  # (batch, n)
    after_first_eos = (is_eos.cumsum(dim=-1) - is_eos) > 0
    return tokens.masked_fill(after_first_eos, pad_token_id)


_MASK64 = 0xFFFFFFFFFFFFFFFF


def _mix64(value: int) -> int:
    """SplitMix64's finaliser: a well-spread 64-bit integer from any 64-bit integer."""
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


def prompt_key(token_ids) -> int:
    """A 64-bit digest of a prompt's tokens (the unpadded ids, mask tokens included): rows with different prompts
    get different random streams, the same prompt the same stream however it is padded or batched."""
    key = 0x9E3779B97F4A7C15
    for token in token_ids:
        key = _mix64((key + int(token) + 1) & _MASK64)
    return key


def row_seed(seed: int, row: int, prompt: int = 0) -> int:
    """The seed of the random stream of a batch row that is copy `row` of a prompt whose [`prompt_key`] is `prompt`:
    a SplitMix64 mix of the three, so that neither two prompts nor two copies of one prompt share a stream."""
    mixed = (seed * 0x9E3779B97F4A7C15 + row * 0xBF58476D1CE4E5B9 + prompt) & _MASK64
    return _mix64(mixed) & 0x7FFFFFFFFFFFFFFF


class RandomDraws:
    """Where the sampler's uniform float64 draws come from.

    - `RandomDraws.per_row(seed, copy_index, device, prompt_keys)` (what `seed=` gives): every batch row draws from
      its own generator, seeded with [`row_seed`] from `seed`, its prompt and its index among the copies of its
      prompt, and only
      at steps where it still has a masked position in the block. A row's sample then depends on its prompt and the
      seed alone, not on the other rows of the batch, caches, thresholds or guidance.
    - `RandomDraws.shared(generator)` (what `generator=` gives, or torch's global generator): one stream for the
      batch; each draw is made for the whole batch and the running rows are picked from it.
    """

    def __init__(self, generator: Optional[torch.Generator] = None, row_generators=None):
        self.generator, self.row_generators = generator, row_generators

    @classmethod
    def per_row(cls, seed, copy_index: torch.Tensor, device, prompt_keys=None) -> "RandomDraws":
        """`seed`: an int for every row, or a list with one seed per row."""
        keys = [0] * len(copy_index) if prompt_keys is None else prompt_keys
        seeds = [seed] * len(copy_index) if isinstance(seed, int) else seed
        return cls(
            row_generators=[
                torch.Generator(device=device).manual_seed(row_seed(one, int(copy), key))
                for one, copy, key in zip(seeds, copy_index, keys)
            ]
        )

    @classmethod
    def shared(cls, generator: Optional[torch.Generator] = None) -> "RandomDraws":
        return cls(generator=generator)

    @classmethod
    def for_call(
        cls, seed: Optional[int], generator, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, copies: int, device
    ) -> "RandomDraws":
        """Per-row streams with a `seed` (an int, or a list of one int per prompt), else one shared stream.
        `prompt_ids` / `prompt_mask` (batch, prompt length): the rows' prompts, each prompt's `copies` in consecutive
        rows."""
        if seed is None:
            return cls.shared(generator)
        keys = [prompt_key(ids[mask].tolist()) for ids, mask in zip(prompt_ids.cpu(), prompt_mask.bool().cpu())]
        if not isinstance(seed, int):  # one seed per prompt: a prompt samples as it would alone with its seed
            if len(seed) * copies != len(keys):
                raise ValueError(
                    f"diffusion_generate: `seed` as a list needs one seed per prompt "
                    f"({len(keys) // copies}), got {len(seed)}."
                )
            seed = [one for one in seed for _ in range(copies)]
        return cls.per_row(seed, torch.arange(copies).repeat(len(keys) // copies), device, keys)

    def uniform(self, shape, device, rows: Optional[RunningRows] = None, active=None) -> torch.Tensor:
        """Draws of `shape` = (running rows, ...) on `device`, from the generators' device (a CPU generator also
        seeds a GPU run). `active` (running rows,) bool: with per-row streams only these rows draw (the others get
        zeros, to be ignored); a shared stream draws for every row of the batch (`rows.batch_size`)."""
        index = None if rows is None else rows.index
        if self.row_generators is None:
            draw_device = self.generator.device if self.generator is not None else device
            if index is None:
                return torch.rand(shape, generator=self.generator, device=draw_device, dtype=torch.float64).to(device)
            full = torch.rand(
                (rows.batch_size, *shape[1:]), generator=self.generator, device=draw_device, dtype=torch.float64
            )
            return full.to(device)[index.to(device)]
        batch_rows = range(shape[0]) if index is None else index.tolist()
        drawing = [True] * shape[0] if active is None else active.tolist()
        draws = torch.empty(shape, device=device, dtype=torch.float64)
        for position, (row, draws_now) in enumerate(zip(batch_rows, drawing)):
            generator = self.row_generators[row]
            if not draws_now:
                draws[position].zero_()
            elif generator.device == draws.device:  # straight into the batch tensor, no copy
                torch.rand(shape[1:], generator=generator, dtype=torch.float64, out=draws[position])
            else:
                draws[position] = torch.rand(
                    shape[1:], generator=generator, device=generator.device, dtype=torch.float64
                )
        return draws


class SlotDraws(RandomDraws):
    """The draws of a step that runs on some positions of the block only ([`masked_slots`]): made for the whole
    block as always, `(rows, block_length, ...)` from the same streams, then those of the slots `(rows, k)` taken,
    so the sample is the one of a step on the whole block."""

    def __init__(self, draws: RandomDraws, slots: torch.Tensor, block_length: int):
        super().__init__(draws.generator, draws.row_generators)
        self.slots, self.block_length = slots, block_length

    def uniform(self, shape, device, rows: Optional[RunningRows] = None, active=None) -> torch.Tensor:
        full = super().uniform((shape[0], self.block_length, *shape[2:]), device, rows, active)
        index = self.slots.to(device).view(*self.slots.shape, *([1] * (len(shape) - 2))).expand(-1, -1, *shape[2:])
        return full.gather(1, index)  # (rows, k, ...)


def as_draws(randomness) -> RandomDraws:
    """A `RandomDraws` from a `RandomDraws`, a `torch.Generator` or None (torch's global generator)."""
    return randomness if isinstance(randomness, RandomDraws) else RandomDraws.shared(randomness)


class ConfidenceCredit:
    r"""
    Credit decoding: a position's confidence accumulated over the steps of a block while its candidate stays the
    same, so that a token the model keeps proposing commits before its confidence at one step reaches the threshold
    (dInfer, inclusionAI 2025, credit decoding; here in its simplest form).

    At every step, for each masked position with candidate x0 and confidence c (both greedy and sampled),
    `credit = c + decay * previous credit` if x0 is the previous step's candidate there, else `credit = c`; the
    step ranks and counts (threshold) the positions by credit instead of c. `decay = 0` is plain threshold decoding.
    The credits start from zero at every block; they are kept per batch row and block position.

    Args:
        decay (`float`): the weight of the previous credit, in [0, 1].
        batch_size (`int`), block_length (`int`): the shape of the state.
        device: where the state lives.
    """

    def __init__(self, decay: float, batch_size: int, block_length: int, device=None):
        self.decay = decay
        self.tokens = torch.full((batch_size, block_length), -1, dtype=torch.long, device=device)  # last x0
        self.credit = torch.zeros((batch_size, block_length), device=device)

    def reset(self):
        """A new block: no candidate seen yet."""
        self.tokens.fill_(-1)
        self.credit.zero_()

    def boost(self, x0, confidence, rows: Optional[RunningRows] = None, slots: Optional[torch.Tensor] = None):
        """The credits of this step's candidates, (rows, k), (rows, k) -> (rows, k), recorded for the next step.

        `rows`: which batch rows these are; `slots` (rows, k): which block positions (see [`masked_slots`]), None
        for all of them. Not-eligible positions (confidence -inf) keep -inf and record no credit.
        """
        rows = rows if rows is not None else RunningRows(self.tokens.shape[0])  # all of them
        tokens, credit = rows.take(self.tokens), rows.take(self.credit)  # (rows, n)
        previous_tokens = tokens if slots is None else tokens.gather(1, slots)  # (rows, k)
        previous_credit = credit if slots is None else credit.gather(1, slots)
        boosted = confidence + self.decay * torch.where(x0 == previous_tokens, previous_credit, 0.0)
        eligible = torch.isfinite(boosted)
        new_tokens, new_credit = torch.where(eligible, x0, -1), torch.where(eligible, boosted, 0.0)
        if slots is not None:
            new_tokens, new_credit = tokens.scatter(1, slots, new_tokens), credit.scatter(1, slots, new_credit)
        self.tokens, self.credit = rows.put(self.tokens, new_tokens), rows.put(self.credit, new_credit)
        return boosted


__all__ = [
    "ConfidenceCredit",
    "RandomDraws",
    "RunningRows",
    "SlotDraws",
    "as_draws",
    "fill_finished_rows",
    "pad_after_eos",
    "prompt_key",
    "row_seed",
    "rows_done",
]
