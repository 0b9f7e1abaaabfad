"""Block diffusion (BD3-LM): the config field, block-causal attention, the two-copy training layout, its collator,
the ELBO bound, training with the Trainer and a saved model loading in a fresh process."""

import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from helpers import MASK, PAD, ContextFreeBlockModel, noised, per_block_reference_loss, random_ids, tiny_model
from llada import LLaDAConfig, LLaDAForMaskedDiffusion
from llada.evaluation import block_times, elbo_nll, in_order_nll, in_order_perplexity, sample_times
from llada.masks_llada import _canonical_block_mask, block_causal_mask, block_diffusion_mask
from llada.training.block_collator import DataCollatorForBlockDiffusion
from llada.training.collator import DataCollatorForMaskedDiffusion


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


# ----------------------------------------------------------------------------------------------------------------
# training: the vectorised loss, the collator


@pytest.mark.parametrize("block_size", [1, 4, 5])
def test_vectorised_loss_equals_one_pass_per_block(block_size):
    model = tiny_model(block_size=block_size, initializer_range=0.2)
    collator = DataCollatorForBlockDiffusion(mask_token_id=MASK, pad_token_id=PAD, seed=0, block_size=block_size)
    batch = collator([{"input_ids": row} for row in random_ids(batch=3, seq=12)])
    with torch.no_grad():
        loss = model(**batch).loss
        reference = per_block_reference_loss(model, batch["input_ids"], batch["labels"], batch["p_mask"], block_size)
    torch.testing.assert_close(loss, reference)


def test_sft_loss_equals_one_pass_per_block():
    model = tiny_model(block_size=4, initializer_range=0.2)
    collator = DataCollatorForBlockDiffusion(mask_token_id=MASK, pad_token_id=PAD, seed=2, block_size=4)
    rows = [
        {"input_ids": list(range(2, 12)), "labels": [-100] * 5 + list(range(7, 12))},
        {"input_ids": list(range(20, 30)), "labels": [-100] * 2 + list(range(22, 30))},
    ]
    batch = collator(rows)  # prompts of 5 and 2 tokens, never masked
    assert not bool((batch["input_ids"][0, :5] == MASK).any()) and batch["answer_lengths"].tolist() == [5, 8]
    with torch.no_grad():
        loss = model(**batch).loss
        per_row = []
        for row in range(2):  # the reference's per-row sums, each divided by the answer length, then the mean
            one = {k: v[row : row + 1] for k, v in batch.items() if k in ("input_ids", "labels", "p_mask")}
            total = per_block_reference_loss(model, one["input_ids"], one["labels"], one["p_mask"], 4) * 10
            per_row.append(total / batch["answer_lengths"][row])
    torch.testing.assert_close(loss, torch.stack(per_row).mean())


def test_gradients_of_the_two_copy_layout_match_the_reference():
    model = tiny_model(block_size=4, initializer_range=0.2)
    collator = DataCollatorForBlockDiffusion(mask_token_id=MASK, pad_token_id=PAD, seed=1, block_size=4)
    batch = collator([{"input_ids": row} for row in random_ids(batch=2, seq=12)])
    model(**batch).loss.backward()
    vectorised = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    per_block_reference_loss(model, batch["input_ids"], batch["labels"], batch["p_mask"], 4).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(vectorised[name], p.grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("sft", [False, True])
def test_training_step_runs_the_head_only_at_labelled_positions(sft):
    # train mode: the head runs at the masked positions of the noised copy only; the same loss and gradients as eval
    # mode, where every position goes through it
    collator = DataCollatorForBlockDiffusion(mask_token_id=MASK, pad_token_id=PAD, seed=3, block_size=4)
    rows = [{"input_ids": row} for row in random_ids(batch=3, seq=11).tolist()]
    if sft:
        rows = [dict(row, labels=[-100] * 3 + row["input_ids"][3:]) for row in rows]
    batch = collator(rows)

    def loss_and_grads(training):
        model = tiny_model(block_size=4, initializer_range=0.2).train(training)
        out = model(**batch)
        out.loss.backward()
        return out, {name: p.grad.clone() for name, p in model.named_parameters()}

    (trained, train_grads), (full, full_grads) = loss_and_grads(True), loss_and_grads(False)
    assert trained.logits is None and full.logits.shape == (3, 11, 100)
    torch.testing.assert_close(trained.loss, full.loss)
    for name in full_grads:
        torch.testing.assert_close(train_grads[name], full_grads[name], msg=name)


def test_collator_draws_one_time_per_block():
    collator = DataCollatorForBlockDiffusion(
        mask_token_id=MASK, pad_token_id=PAD, seed=0, block_size=4, masking="bernoulli"
    )
    rows = [{"input_ids": list(range(2, 14))}, {"input_ids": list(range(2, 9))}]  # the second one right-padded
    batch = collator(rows)
    p_mask = batch["p_mask"]  # (2, 12)
    for start in (0, 4, 8):
        assert torch.all(p_mask[:, start : start + 4] == p_mask[:, start : start + 1])
    assert len({round(v, 6) for v in p_mask[0, ::4].tolist()}) == 3  # independent draws per block
    assert torch.equal(batch["labels"] != -100, batch["input_ids"] == MASK)
    assert not bool((batch["input_ids"][1, 7:] == MASK).any())  # padding is never masked
    again = collator(rows)
    assert all(torch.equal(batch[k], again[k]) for k in batch)


@pytest.mark.parametrize("masking", ["exact", "bernoulli"])
def test_collator_options_apply_per_block(masking):
    # complementary masking: the second copy masks exactly each block's other maskable tokens; stratified times:
    # one time in each stratum of [0, 1) across the blocks of the batch (6 blocks: 2 rows x 3)
    collator = DataCollatorForBlockDiffusion(
        mask_token_id=MASK,
        pad_token_id=PAD,
        seed=4,
        block_size=4,
        eps=1e-3,
        masking=masking,
        complementary_masking=True,
        t_sampling="stratified",
    )
    rows = [{"input_ids": list(range(2, 14))}, {"input_ids": list(range(2, 11))}]  # the second one right-padded
    batch = collator(rows)
    masked = batch["labels"] != -100  # (4, 12): the rows, then their complements
    real = batch["attention_mask"][:2].bool()
    assert torch.equal(masked[:2] ^ masked[2:], real) and not bool((masked[:2] & masked[2:]).any())
    p_first, p_second = batch["p_mask"][:2, ::4], batch["p_mask"][2:, ::4]  # (2, 3): one value per block
    if masking == "exact":
        n = torch.tensor([[4, 4, 4], [4, 4, 1]])  # maskable tokens per block
        counts = masked.view(4, 3, 4).sum(-1)
        whole = counts[:2] == n  # a block masked whole counts twice (see the next test)
        assert bool(whole.any()) and bool((~whole).any())
        torch.testing.assert_close(p_first, torch.where(whole, counts[:2] / n / 2, counts[:2] / n))
        torch.testing.assert_close(p_second, (counts[2:] / n).clamp(min=1 / n))
    else:
        torch.testing.assert_close(p_first + p_second, torch.full((2, 3), 1 + 1e-3))  # p(t) + p(1 - t)
        t = ((p_first - 1e-3) / (1 - 1e-3)).flatten()
        assert sorted((t * 6).floor().long().tolist()) == list(range(6))


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


def test_complementary_copies_share_one_clean_copy_for_the_same_loss():
    model = tiny_model(block_size=4).train()
    rows = [{"input_ids": list(range(2, 14))}, {"input_ids": list(range(2, 11))}]  # the second one right-padded
    options = dict(mask_token_id=MASK, pad_token_id=PAD, seed=4, block_size=4, complementary_masking=True)
    shared = DataCollatorForBlockDiffusion(**options)(rows)
    separate = DataCollatorForBlockDiffusion(**options, shared_clean_copy=False)(rows)
    assert "clean_input_ids" not in separate
    assert torch.equal(shared["clean_input_ids"], torch.tensor([list(range(2, 14)), list(range(2, 11)) + [PAD] * 3]))
    assert all(torch.equal(shared[key], separate[key]) for key in separate)
    torch.testing.assert_close(model(**shared).loss, model(**separate).loss)
    assert "clean_input_ids" not in DataCollatorForBlockDiffusion(**{**options, "complementary_masking": False})(rows)


@pytest.mark.parametrize("block_size", [2, 4, None])
def test_complementary_exact_masking_is_an_unbiased_bound(block_size):
    # A token's loss that depends on how many of its block's (row's) tokens are masked, as a real model's does: 1 /
    # (number masked). The ELBO per token is then E_k[(n / k) * k * (1 / k)] / n = E_k[1 / k] for k ~ U{1..n}. A
    # complement counts n - k ~ U{0..n-1}: without the double weight of a row masked whole, the pair would give
    # the fully masked term half its weight.
    n = block_size or 8
    rows = [{"input_ids": list(range(2, 10))}] * 4
    make = DataCollatorForBlockDiffusion if block_size else DataCollatorForMaskedDiffusion
    extra = {"block_size": block_size} if block_size else {}
    losses = []
    for seed in range(150):
        batch = make(
            mask_token_id=MASK, pad_token_id=PAD, seed=seed, masking="exact", complementary_masking=True, **extra
        )(rows)
        masked = batch["input_ids"] == MASK  # (8, 8)
        count = masked.view(8, -1, n).sum(-1, keepdim=True).expand(-1, -1, n).reshape(8, 8)
        scored = batch["labels"] != -100
        losses.append(((scored / count.clamp(min=1)) / batch["p_mask"]).sum() / scored.numel())
    elbo = sum(1 / k for k in range(1, n + 1)) / n
    assert torch.stack(losses).mean().item() == pytest.approx(elbo, rel=0.03)


def test_in_order_blocks_mask_a_suffix_and_score_its_first_token():
    collator = DataCollatorForBlockDiffusion(
        mask_token_id=MASK,
        pad_token_id=PAD,
        seed=3,
        block_size=4,
        complementary_masking=True,
        in_order_probability=1.0,
    )
    rows = [{"input_ids": list(range(2, 14))}, {"input_ids": list(range(2, 11))}]  # blocks of 4, 4, 4 and 4, 4, 1
    batch = collator(rows)
    masked = (batch["input_ids"] == MASK).view(4, 3, 4)
    scored = (batch["labels"] != -100).view(4, 3, 4)
    real = batch["attention_mask"].bool().view(4, 3, 4)
    n = real.sum(-1)  # (4, 3)
    first = masked.float().argmax(-1)  # (4, 3) the first masked position of each block
    position = torch.arange(4)
    assert torch.equal(masked, real & (position >= first[..., None]))  # a suffix, from j on
    assert torch.equal(scored, masked & (position == first[..., None]))  # only j is scored
    assert torch.equal(first[2:], (first[:2] + n[:2] // 2) % n[:2])  # the complement starts half a block later
    torch.testing.assert_close(batch["p_mask"].view(4, 3, 4)[..., 0], 1 / n.float())  # weight n
    assert torch.equal(batch["clean_input_ids"], torch.tensor([list(range(2, 14)), list(range(2, 11)) + [PAD] * 3]))
    with pytest.raises(ValueError, match="in_order_probability"):
        DataCollatorForBlockDiffusion(mask_token_id=MASK, pad_token_id=PAD, block_size=4, in_order_probability=1.5)


@pytest.mark.parametrize("complementary", [True, False])
@pytest.mark.parametrize("probability", [0.0, 0.5, 1.0])
def test_in_order_share_mixes_the_bound_and_the_in_order_nll(probability, complementary):
    # a token's loss that depends on its place in the block and on how many of the block's tokens are masked:
    # g(i, k) = 1 + i k. Per block: the ELBO is (1 / n) sum_k sum_i g(i, k), the in-order NLL sum_j g(j, n - j)
    n = 4
    rows = [{"input_ids": list(range(2, 10))}] * 4
    losses = []
    for seed in range(150):
        batch = DataCollatorForBlockDiffusion(
            mask_token_id=MASK,
            pad_token_id=PAD,
            seed=seed,
            block_size=n,
            complementary_masking=complementary,
            in_order_probability=probability,
        )(rows)
        masked = (batch["input_ids"] == MASK).view(-1, 2, n)
        count = masked.sum(-1, keepdim=True).float()
        loss = 1 + torch.arange(n) * count
        scored = (batch["labels"] != -100).view(-1, 2, n)
        losses.append((loss * scored / batch["p_mask"].view(-1, 2, n)).sum() / scored.numel())
    elbo = sum(1 + i * k for k in range(1, n + 1) for i in range(n)) / n / n
    in_order = sum(1 + j * (n - j) for j in range(n)) / n
    expected = (1 - probability) * elbo + probability * in_order
    assert torch.stack(losses).mean().item() == pytest.approx(expected, rel=0.03)


def test_collator_keeps_the_sft_prompt_clean():
    collator = DataCollatorForBlockDiffusion(
        mask_token_id=MASK, pad_token_id=PAD, seed=0, block_size=2, eps=0.999
    )  # masks almost every maskable token
    batch = collator([{"input_ids": [5, 6, 7, 8, 9, 10], "labels": [-100, -100, -100, 8, 9, 10]}])
    assert batch["input_ids"][0, :3].tolist() == [5, 6, 7]
    assert batch["answer_lengths"].tolist() == [3]


@pytest.mark.parametrize("value", [None, 0, 2.0])
def test_collator_needs_a_block_size(value):
    with pytest.raises(ValueError, match="block_size"):
        DataCollatorForBlockDiffusion(mask_token_id=MASK, pad_token_id=PAD, block_size=value)


# ----------------------------------------------------------------------------------------------------------------
# the ELBO bound


def test_block_times_are_one_per_block_and_stratified():
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, :3] = 0  # left padding: that row's blocks start at its first real token
    times = block_times(mask, 4, 8, "stratified", torch.Generator().manual_seed(0))  # (8, 2, 10)
    assert times.shape == (8, 2, 10)
    assert torch.all(times[:, 0, :4] == times[:, 0, :1]) and torch.all(times[:, 1, 3:7] == times[:, 1, 3:4])
    for k in range(8):
        assert bool(((times[k] >= k / 8) & (times[k] < (k + 1) / 8)).all())
    assert sample_times(3, 2).shape == (2, 3)


def test_elbo_of_a_block_model_matches_a_hand_computation():
    model = tiny_model(block_size=4, initializer_range=0.2)
    ids = random_ids(batch=2, seq=10)
    got = elbo_nll(model, ids, num_samples=3, t_sampling="uniform", eps=1e-3, seed=5)

    generator = torch.Generator().manual_seed(5)
    times = torch.rand(3, 2 * 3, generator=generator).view(3, 2, 3)  # (draws, batch, blocks)
    expected = torch.zeros(2)
    for t in times:
        p = (1 - 1e-3) * t.repeat_interleave(4, dim=1)[:, :10] + 1e-3  # (batch, seq)
        masked = torch.rand(2, 10, generator=generator) < p
        noisy = ids.masked_fill(masked, MASK)
        labels = ids.masked_fill(~masked, -100)
        with torch.no_grad():  # the reference's mean over (1, 10) token slots, times 10: each row's sum
            expected += (
                torch.stack(
                    [
                        per_block_reference_loss(model, noisy[b : b + 1], labels[b : b + 1], p[b : b + 1], 4)
                        for b in range(2)
                    ]
                )
                * 10
            )
    torch.testing.assert_close(got, expected / 3)


def test_elbo_of_a_context_free_block_model_is_unbiased():
    log_q = torch.log_softmax(torch.randn(8, generator=torch.Generator().manual_seed(0)), dim=0)
    ids = torch.randint(0, 7, (4, 64), generator=torch.Generator().manual_seed(1))
    estimate = elbo_nll(ContextFreeBlockModel(log_q, block_size=8), ids, num_samples=256, seed=0)
    torch.testing.assert_close(estimate, -log_q[ids].sum(1), rtol=0.05, atol=0.0)


@torch.no_grad()
def in_order_reference(model, ids, block_size, scored):
    """`-log p(x)` of each row, one position at a time: position i is predicted with the clean tokens before it
    and the scored positions of its block from i on masked (a full model: every scored position from i on)."""
    batch, seq = ids.shape
    total = torch.zeros(batch)
    for b in range(batch):
        for i in range(seq):
            if not scored[b, i]:
                continue
            later = torch.arange(seq) >= i
            same_block = torch.arange(seq) // block_size == i // block_size
            noisy = ids[b].masked_fill(later & same_block & scored[b], MASK)[None]
            clean = {"clean_input_ids": ids[b : b + 1]} if model.config.block_size else {}
            logits = model(input_ids=noisy, **clean).logits[0, i]
            total[b] += -torch.log_softmax(logits.float(), dim=-1)[ids[b, i]]
    return total


@pytest.mark.parametrize("block_size", [4, 3, None])
def test_in_order_nll_is_the_chain_rule_one_position_at_a_time(block_size):
    model = tiny_model(block_size=block_size, initializer_range=0.2)
    ids = random_ids(batch=2, seq=10)
    scored = torch.ones_like(ids, dtype=torch.bool)
    scored[:, 0] = False  # the first token is context, as an autoregressive perplexity has it
    scored[1, 5] = False  # a clean position inside a block stays clean context
    expected = in_order_reference(model, ids, block_size or 10, scored)
    torch.testing.assert_close(in_order_nll(model, ids, scored_mask=scored), expected)


def test_in_order_perplexity_scores_the_tokens_an_autoregressive_perplexity_scores():
    model = tiny_model(block_size=4, initializer_range=0.2)
    ids = random_ids(batch=3, seq=8)
    result = in_order_perplexity(model, ids, batch_size=2, show_progress=False)
    assert result["num_tokens"] == 3 * 7
    scored = torch.ones_like(ids, dtype=torch.bool)
    scored[:, 0] = False
    expected = in_order_reference(model, ids, 4, scored).sum() / 21
    assert math.isclose(result["nll"], float(expected), rel_tol=1e-5)
    assert math.isclose(result["perplexity"], math.exp(result["nll"]))
    with pytest.raises(ValueError, match="no token to score"):
        in_order_perplexity(model, ids[:, :1], show_progress=False)


# ----------------------------------------------------------------------------------------------------------------
# training with the Trainer and llada-train


def test_trainer_trains_a_block_model(tmp_path):
    from helpers import arguments, blocks, make_model
    from llada.training.tokenizers import build_byte_tokenizer
    from llada.training.trainer import LLaDATrainer

    tokenizer = build_byte_tokenizer()
    model = make_model(tokenizer, block_size=4)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainer = LLaDATrainer(
        model=model,
        args=arguments(tmp_path, max_steps=25, eval_num_t_samples=2),
        train_dataset=blocks(),
        eval_dataset=blocks(8, offset=2000),
        processing_class=tokenizer,
    )
    assert isinstance(trainer.data_collator, DataCollatorForBlockDiffusion) and trainer.data_collator.block_size == 4
    first_eval = trainer.evaluate()
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    last_eval = trainer.evaluate()
    assert last_eval["eval_loss"] < first_eval["eval_loss"]
    assert last_eval["eval_perplexity_bound"] == pytest.approx(math.exp(last_eval["eval_loss"]))
    assert [name for name, p in model.named_parameters() if torch.equal(p.detach(), before[name])] == []


def test_the_block_config_is_the_main_job_size_with_bytes_and_blocks():
    from llada.training.run import parse_training_args

    main_job = parse_training_args([])
    model_args, data_args, training_args = parse_training_args(["--config", "tinyshakespeare-block4"])
    assert model_args.block_size == 4 and training_args.masking is None  # the block collator's default: exact
    assert (
        training_args.max_steps % training_args.eval_steps == 0
        and training_args.save_steps == training_args.eval_steps
    )
    for name in ("hidden_size", "num_hidden_layers", "intermediate_size"):
        assert getattr(model_args, name) == getattr(main_job[0], name)
    assert model_args.tokenizer == "bytes" and not training_args.complementary_masking
    assert data_args.max_seq_length == main_job[1].max_seq_length


def test_in_order_share_follows_its_schedule(tmp_path):
    from transformers import TrainerCallback

    from helpers import arguments, blocks, make_model
    from llada.training.tokenizers import build_byte_tokenizer
    from llada.training.trainer import LLaDATrainer

    tokenizer = build_byte_tokenizer()
    shares = []

    class Record(TrainerCallback):  # the share each step ran with
        def on_step_end(self, args, state, control, **kwargs):
            shares.append(trainer.data_collator.in_order_probability)

    trainer = LLaDATrainer(
        model=make_model(tokenizer, block_size=4),
        train_dataset=blocks(),
        args=arguments(tmp_path, max_steps=5, in_order_probability=1.0, in_order_probability_end=0.0),
        processing_class=tokenizer,
        callbacks=[Record()],
    )
    trainer.train()
    assert shares == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
    with pytest.raises(ValueError, match="in_order_probability_end"):
        arguments(tmp_path, in_order_probability_end=1.5)
    with pytest.raises(ValueError, match="dataloader_num_workers"):
        arguments(tmp_path, in_order_probability_end=0.0, dataloader_num_workers=2)
    with pytest.raises(ValueError, match="block models"):  # a full-attention model has no in-order blocks
        LLaDATrainer(
            model=make_model(tokenizer),
            args=arguments(tmp_path, in_order_probability_end=0.0),
            train_dataset=blocks(),
            processing_class=tokenizer,
        )


def test_trainer_reports_the_in_order_perplexity_of_a_block_model(tmp_path):
    from helpers import arguments, blocks, make_model
    from llada.training.tokenizers import build_byte_tokenizer
    from llada.training.trainer import LLaDATrainer

    tokenizer = build_byte_tokenizer()
    model = make_model(tokenizer, block_size=4).eval()
    eval_set = blocks(8, offset=2000)
    trainer = LLaDATrainer(
        model=model,
        args=arguments(tmp_path, eval_num_t_samples=2, eval_in_order=True, per_device_eval_batch_size=3),
        eval_dataset=eval_set,
        processing_class=tokenizer,
    )
    metrics = trainer.evaluate()
    expected = in_order_perplexity(model, torch.tensor(eval_set["input_ids"]), show_progress=False)["perplexity"]
    assert metrics["eval_in_order_perplexity"] == pytest.approx(expected, rel=1e-5)
    assert (
        "eval_in_order_perplexity"
        not in LLaDATrainer(  # off by default
            model=model,
            args=arguments(tmp_path, eval_num_t_samples=2),
            eval_dataset=eval_set,
            processing_class=tokenizer,
        ).evaluate()
    )


def test_llada_train_block_size(tmp_path):
    from transformers import AutoModel

    from helpers import TINY_TRAIN_ARGS
    from llada.cli.train import main

    out = tmp_path / "block"
    assert (
        main(
            [
                "--output_dir",
                str(out),
                "--block_size",
                "4",
                "--max_steps",
                "3",
                "--eval_steps",
                "3",
                "--sample_block_length",
                "8",
                *TINY_TRAIN_ARGS,
            ]
        )
        == 0
    )
    model = AutoModel.from_pretrained(out, trust_remote_code=True)
    assert model.config.block_size == 4
    assert model.generation_config.block_length == 4  # a block model samples block by block
    with pytest.raises(ValueError, match="--block_size"):
        from llada.training.models import ModelArguments

        ModelArguments(model_type="autoregressive", block_size=4)


# ----------------------------------------------------------------------------------------------------------------
# a saved block model outside this package


REMOTE_BLOCK_MODEL = """
import sys
sys.modules["llada"] = None  # only the files of the folder exist, as on a user's machine
import torch
from transformers import AutoModel
folder = sys.argv[1]
model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
ids = torch.load(folder + "/ids.pt")
with torch.no_grad():
    torch.save(model(ids).logits, folder + "/remote_logits.pt")
torch.save(model.diffusion_generate(ids[:, :5], max_new_tokens=8, eos_token_id=None), folder + "/remote_tokens.pt")
print(model.config.block_size)
"""


def test_a_saved_block_model_loads_in_a_fresh_process(tmp_path):
    model = tiny_model(block_size=4)
    model.save_pretrained(tmp_path)
    ids = random_ids()
    torch.save(ids, tmp_path / "ids.pt")
    result = subprocess.run(
        [sys.executable, "-c", REMOTE_BLOCK_MODEL, str(tmp_path)], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "4"
    with torch.no_grad():
        torch.testing.assert_close(torch.load(tmp_path / "remote_logits.pt"), model(ids).logits)
    tokens = model.diffusion_generate(ids[:, :5], max_new_tokens=8, eos_token_id=None)
    assert torch.equal(torch.load(tmp_path / "remote_tokens.pt"), tokens)


def test_exact_masking_draws_k_of_each_block_uniformly():
    counts = {k: 0 for k in range(1, 5)}
    for seed in range(200):
        collator = DataCollatorForBlockDiffusion(
            mask_token_id=MASK, pad_token_id=PAD, seed=seed, block_size=4, masking="exact"
        )
        batch = collator([{"input_ids": list(range(2, 14))}, {"input_ids": list(range(2, 9))}])
        masked = batch["input_ids"] == MASK
        for row, start in ((0, 0), (0, 4), (0, 8), (1, 0)):
            k = int(masked[row, start : start + 4].sum())
            assert batch["p_mask"][row, start].item() == pytest.approx(k / 4)  # weight n / k
            counts[k] += 1
        assert int(masked[1, 4:].sum()) == round(3 * batch["p_mask"][1, 4].item())  # 3 real tokens in block 1
        assert not bool(masked[1, 7:].any())
    assert min(counts.values()) > 150  # about 200 each of 800


def test_exact_masking_loss_is_the_same_bound():
    # context-free predictions: both estimators have the same expectation, sum_i -log q(x_i) / L per token
    model = ContextFreeBlockModel(torch.log_softmax(torch.randn(8, generator=torch.Generator().manual_seed(0)), 0), 4)
    rows = [{"input_ids": row} for row in torch.randint(0, 7, (64, 16), generator=torch.Generator().manual_seed(1))]
    exact = -model.log_probs[torch.stack([r["input_ids"] for r in rows])].mean()
    for masking in ("bernoulli", "exact"):
        losses = []
        for seed in range(40):
            batch = DataCollatorForBlockDiffusion(
                mask_token_id=7, pad_token_id=0, seed=seed, block_size=4, masking=masking
            )(rows)
            logits = model(batch["input_ids"], clean_input_ids=batch["input_ids"]).logits
            ce = F.cross_entropy(logits.transpose(1, 2), batch["labels"].clamp(min=0), reduction="none")
            losses.append(((ce * (batch["labels"] != -100)) / batch["p_mask"]).sum() / batch["labels"].numel())
        assert torch.stack(losses).mean() == pytest.approx(exact.item(), rel=0.03), masking
    with pytest.raises(ValueError, match="`masking`"):
        DataCollatorForBlockDiffusion(mask_token_id=7, pad_token_id=0, block_size=4, masking="binomial")
