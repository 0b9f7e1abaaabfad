"""Block diffusion models (BD3-LM) in the forward pass: the `block_size` config field, the block-causal and
training attention patterns (llada/masks_llada.py), padding, the checks of `clean_input_ids`, and noised copies
sharing one clean copy."""

import pytest
import torch

from helpers import PAD, noised, random_ids, tiny_model
from llada import LLaDAConfig, LLaDAForMaskedDiffusion
from llada.masks_llada import _canonical_block_mask, block_causal_mask, block_diffusion_mask


def same_weights(block_size, seed=0, **overrides):
    """A block model with the weights of the full model `tiny_model(seed)`."""
    full = tiny_model(seed, **overrides)
    block = tiny_model(seed + 1, block_size=block_size, **overrides)
    block.load_state_dict(full.state_dict())
    return full, block


# ----------------------------------------------------------------------------------------------------------------
# configuration


@pytest.mark.parametrize("value", [0, -4, 2.5, True, "8"])
def test_block_size_must_be_none_or_a_positive_integer(value):
    with pytest.raises(ValueError, match="`block_size`"):
        LLaDAConfig(
            vocab_size=100, mask_token_id=99, pad_token_id=0, bos_token_id=None, eos_token_id=1, block_size=value
        )


def test_block_size_is_saved_and_loaded(tmp_path):
    model = tiny_model(block_size=4)
    assert tiny_model().config.block_size is None
    model.save_pretrained(tmp_path)
    assert LLaDAForMaskedDiffusion.from_pretrained(tmp_path).config.block_size == 4


# ----------------------------------------------------------------------------------------------------------------
# attention patterns


def test_masks_are_the_block_patterns():
    blocks = torch.tensor([[0, 0, 1, 1]])
    assert block_causal_mask(blocks, blocks)[0, 0].int().tolist() == [
        [1, 1, 0, 0],
        [1, 1, 0, 0],
        [1, 1, 1, 1],
        [1, 1, 1, 1],
    ]
    # [noised copy; clean copy]: a noised block sees itself and the earlier clean blocks, the clean copy is
    # block-causal and never sees the noised one
    assert block_diffusion_mask(blocks)[0, 0].int().tolist() == [
        [1, 1, 0, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0, 0],
        [0, 0, 1, 1, 1, 1, 0, 0],
        [0, 0, 1, 1, 1, 1, 0, 0],
        [0, 0, 0, 0, 1, 1, 0, 0],
        [0, 0, 0, 0, 1, 1, 0, 0],
        [0, 0, 0, 0, 1, 1, 1, 1],
        [0, 0, 0, 0, 1, 1, 1, 1],
    ]


def test_two_noised_copies_share_the_clean_copy_in_the_mask():
    blocks = torch.tensor([[0, 0, 1, 1]])
    two = block_diffusion_mask(blocks, copies=2)[0, 0].int()  # [noised 1; noised 2; clean], (12, 12)
    one = block_diffusion_mask(blocks)[0, 0].int()
    noised, clean = one[:4, :4], one[:4, 4:]  # a noised copy's own keys, its clean keys
    zeros = torch.zeros_like(noised)
    torch.testing.assert_close(two[:4], torch.cat([noised, zeros, clean], 1))
    torch.testing.assert_close(two[4:8], torch.cat([zeros, noised, clean], 1))
    torch.testing.assert_close(two[8:], torch.cat([zeros, zeros, one[4:, 4:]], 1))


def test_the_mask_of_a_shape_is_built_once():
    model = tiny_model(block_size=4)
    _canonical_block_mask.cache_clear()
    with torch.no_grad():
        for _ in range(3):
            model(random_ids())
    info = _canonical_block_mask.cache_info()
    assert (info.misses, info.hits) == (1, 2)


def test_block_size_of_the_sequence_length_is_the_full_model():
    full, block = same_weights(block_size=12)
    ids = random_ids()
    noisy, labels = noised(ids)
    p_mask = torch.tensor([0.4, 0.3])
    with torch.no_grad():
        torch.testing.assert_close(block(ids).logits, full(ids).logits)
        torch.testing.assert_close(
            block(noisy, labels=labels, p_mask=p_mask).loss, full(noisy, labels=labels, p_mask=p_mask).loss
        )


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_block_size_one_is_causal(attn_implementation):
    model = tiny_model(block_size=1)
    model.config._attn_implementation = attn_implementation
    ids = random_ids(batch=1)
    with torch.no_grad():
        reference = model(ids).logits
        for position in range(ids.shape[1]):
            changed = ids.clone()
            changed[0, position] = (ids[0, position] + 1) % 97 + 2
            logits = model(changed).logits
            torch.testing.assert_close(logits[:, :position], reference[:, :position])  # earlier: never changed
            assert not torch.allclose(logits[:, position], reference[:, position])


def test_blocks_are_bidirectional_inside_and_causal_between():
    model = tiny_model(block_size=4, initializer_range=0.2)
    ids = random_ids(batch=1)
    changed = ids.clone()
    changed[0, 6] = (ids[0, 6] + 1) % 97 + 2  # in block 1 (positions 4..7)
    with torch.no_grad():
        before, after = model(ids).logits, model(changed).logits
    torch.testing.assert_close(after[:, :4], before[:, :4])
    assert not torch.allclose(after[:, 4], before[:, 4])  # an earlier position of the same block
    assert not torch.allclose(after[:, 8], before[:, 8])  # a later block


@pytest.mark.parametrize("side", ["left", "right"])
def test_padding_changes_nothing_and_eager_equals_sdpa(side):
    model = tiny_model(block_size=4)
    real = random_ids(batch=1, seq=7)
    pad = torch.full((1, 5), PAD)
    padded = torch.cat([pad, real], 1) if side == "left" else torch.cat([real, pad], 1)
    mask = (padded != PAD).long()
    batch = torch.cat([padded, random_ids(batch=1, seq=12, seed=3)])
    batch_mask = torch.cat([mask, torch.ones_like(mask)])
    where = slice(5, None) if side == "left" else slice(0, 7)
    noisy_real, labels_real = noised(real)
    noisy = batch.clone()
    noisy[0, where] = noisy_real[0]
    clean = batch.clone()
    for implementation in ("eager", "sdpa"):
        model.config._attn_implementation = implementation
        with torch.no_grad():
            alone = model(real).logits[0]
            together = model(batch, attention_mask=batch_mask).logits[0, where]
            torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
            trained_alone = model(noisy_real, clean_input_ids=real).logits[0]
            trained = model(noisy, attention_mask=batch_mask, clean_input_ids=clean).logits[0, where]
            torch.testing.assert_close(trained, trained_alone, atol=1e-5, rtol=1e-5)


def test_clean_input_ids_are_checked():
    ids = random_ids()
    with pytest.raises(ValueError, match="block_size=None"):
        tiny_model()(ids, clean_input_ids=ids)
    with pytest.raises(ValueError, match="clean_input_ids"):
        tiny_model(block_size=4)(ids, clean_input_ids=ids[:, :6])
    with pytest.raises(ValueError, match=r"batch / copies.*got \(2, 12\)"):  # 3 rows are no copies of 2
        tiny_model(block_size=4)(random_ids(batch=3), clean_input_ids=ids)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_noised_copies_sharing_a_clean_copy_equal_one_clean_copy_each(implementation):
    # rows [copy 1 of a, copy 1 of b (left-padded), copy 2 of a, copy 2 of b]: one clean row each for a and b
    model = tiny_model(block_size=4)
    model.config._attn_implementation = implementation
    clean = random_ids(batch=2, seq=10)
    clean[1, :3] = PAD
    padding = (clean != PAD).long()
    first, _ = noised(clean, seed=5)
    second, _ = noised(clean, seed=6)
    rows, masks = torch.cat([first, second]), torch.cat([padding, padding])
    with torch.no_grad():
        shared = model(rows, attention_mask=masks, clean_input_ids=clean).logits
        one_each = model(rows, attention_mask=masks, clean_input_ids=torch.cat([clean, clean])).logits
    real = masks.bool()
    torch.testing.assert_close(shared[real], one_each[real], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("copies", [1, 2])
@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_the_layout_attended_in_two_parts_equals_one_pass(copies, implementation):
    # output_attentions needs the one (c + 1) seq pass, with the layout's full mask: the reference
    model = tiny_model(block_size=4)
    model.config._attn_implementation = implementation
    clean = random_ids(batch=2, seq=10)
    clean[1, :3] = PAD
    padding = (clean != PAD).long()
    rows = torch.cat([noised(clean, seed=5 + copy)[0] for copy in range(copies)])
    masks = torch.cat([padding] * copies)
    with torch.no_grad():
        two_parts = model(rows, attention_mask=masks, clean_input_ids=clean)
        one_pass = model(rows, attention_mask=masks, clean_input_ids=clean, output_attentions=True)
    assert one_pass.attentions[0].shape[-1] == (copies + 1) * 10
    real = masks.bool()
    torch.testing.assert_close(two_parts.logits[real], one_pass.logits[real], atol=1e-5, rtol=1e-5)
