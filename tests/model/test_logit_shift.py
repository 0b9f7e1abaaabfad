"""Dream's logit shift (`config.logit_shift`) in the forward pass: the token at position i is predicted from the
final state of position i - 1, in the plain forward and in block diffusion's training layout and loss. Sampling with
the shift: generation/test_logit_shift_sampling.py."""

import pytest
import torch

from helpers import MASK, shifted_pair


@pytest.mark.parametrize("block_size", [None, 3])
@torch.no_grad()
def test_position_i_gets_the_logits_of_position_i_minus_one(block_size):
    plain, shifted = shifted_pair(block_size=block_size)
    ids = torch.randint(2, 99, (2, 10))
    ids[:, 4:7] = MASK
    expected = plain(ids).logits  # (2, 10, vocab)
    logits = shifted(ids).logits
    assert torch.equal(logits[:, 1:], expected[:, :-1])
    assert torch.equal(logits[:, 0], expected[:, 0])  # position 0 reads its own state (Dream's convention)
    assert torch.equal(shifted(ids, logits_to_keep=slice(4, 8)).logits, logits[:, 4:8])
    per_row = torch.tensor([[2, 5], [7, 9]])
    assert torch.equal(
        shifted(ids, logits_to_keep=per_row).logits,
        logits.gather(1, per_row[..., None].expand(-1, -1, logits.shape[-1])),
    )


@pytest.mark.parametrize("block_size, copies", [(1, 1), (3, 1), (3, 2)])
@torch.no_grad()
def test_a_block_starts_from_the_clean_state_before_it_in_the_training_layout(block_size, copies):
    """BD3-LM's layout predicts a noised block from the clean blocks before it; with the shift its first position
    reads the clean copy's last state of the previous block, as sampling does (finished blocks are clean). So the
    first position of every block gets the logits of the clean sequence's plain pass; with `block_size=1` every
    position does: the autoregressive factorisation."""
    _, model = shifted_pair(block_size=block_size)
    clean = torch.randint(2, 99, (2, 12))
    noisy = torch.cat([clean.masked_fill(torch.rand(2, 12) < 0.5, MASK) for _ in range(copies)])  # copy-major rows
    layout = model(noisy, clean_input_ids=clean).logits  # (copies * 2, 12, vocab)
    reference = model(clean).logits.repeat(copies, 1, 1)  # block-causal pass over the clean rows
    block_starts = torch.arange(1, 12)[torch.arange(1, 12) % block_size == 0]
    torch.testing.assert_close(layout[:, block_starts], reference[:, block_starts], atol=1e-5, rtol=1e-5)
    # inside a block the state before a position is the noised one: the masks matter there
    single = model(noisy[:2], clean_input_ids=clean).logits
    torch.testing.assert_close(layout[:2], single, atol=1e-5, rtol=1e-5)


def test_the_training_loss_reads_the_shifted_states():
    _, model = shifted_pair(block_size=2)
    clean = torch.randint(2, 99, (2, 12))
    masked = torch.rand(2, 12) < 0.5
    labels = clean.masked_fill(~masked, -100)
    noisy = clean.masked_fill(masked, MASK)
    with torch.no_grad():
        logits = model(noisy, clean_input_ids=clean).logits
    expected = torch.nn.functional.cross_entropy(logits[masked], clean[masked])
    model.train()
    loss = model(noisy, labels=labels).loss  # training mode: only the labelled positions go through the head
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)
