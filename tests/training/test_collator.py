"""DataCollatorForMaskedDiffusion: exact masking maths (seeded), SFT prompt protection, truncation, loss by hand."""

import pytest
import torch
import torch.nn.functional as F

from helpers import tiny_model
from llada.training.collator import DataCollatorForMaskedDiffusion, batch_seed
from llada.training.tokenizers import build_byte_tokenizer

MASK, PAD, EOS = 99, 0, 1


def rows(*lengths, start=2):
    return [{"input_ids": list(range(start, start + n))} for n in lengths]


def test_masking_matches_the_forward_process_exactly():
    collator = DataCollatorForMaskedDiffusion(mask_token_id=MASK, pad_token_id=PAD, eps=1e-3, seed=7)
    batch = collator(rows(10, 10, 10))

    clean = torch.arange(2, 12).repeat(3, 1)
    generator = torch.Generator().manual_seed(batch_seed(7, clean))  # documented order: t, then token noise
    t = torch.rand(3, generator=generator)
    p = (1 - 1e-3) * t + 1e-3
    masked = torch.rand(3, 10, generator=generator) < p[:, None]

    assert torch.equal(batch["input_ids"], torch.where(masked, torch.tensor(MASK), clean))
    assert torch.equal(batch["labels"], torch.where(masked, clean, torch.tensor(-100)))
    assert torch.equal(batch["p_mask"], p[:, None].expand(3, 10))
    assert torch.equal(batch["attention_mask"], torch.ones(3, 10, dtype=torch.long))
    assert "answer_lengths" not in batch


def test_padding_is_never_masked_and_seeded_runs_repeat():
    def make():
        return DataCollatorForMaskedDiffusion(mask_token_id=MASK, pad_token_id=PAD, seed=3)

    first, second = make()(rows(4, 9)), make()(rows(4, 9))
    for key in first:
        assert torch.equal(first[key], second[key])
    assert first["input_ids"].shape == (2, 9)
    assert torch.equal(first["attention_mask"][0], torch.tensor([1, 1, 1, 1, 0, 0, 0, 0, 0]))
    assert (first["input_ids"][0, 4:] == PAD).all() and (first["labels"][0, 4:] == -100).all()


def test_masking_probability_matches_t_on_average():
    collator = DataCollatorForMaskedDiffusion(mask_token_id=MASK, pad_token_id=PAD, seed=0)
    batch = collator(rows(*[200] * 256))
    masked_fraction = (batch["labels"] != -100).float().mean(dim=1)
    assert torch.allclose(masked_fraction, batch["p_mask"][:, 0], atol=0.12)
    assert abs(batch["p_mask"][:, 0].mean().item() - 0.5) < 0.06  # p ~ U(eps, 1)


def test_sft_never_masks_the_prompt_and_counts_answer_lengths():
    examples = [
        {"input_ids": [5, 6, 7, 8, 9, 10], "labels": [-100, -100, -100, 8, 9, 10]},
        {"input_ids": [5, 6, 7, 8], "labels": [-100, -100, 7, 8]},
    ]
    collator = DataCollatorForMaskedDiffusion(mask_token_id=MASK, pad_token_id=PAD, seed=1, pad_answers_with_eos=False)
    for seed in range(20):
        collator.seed = seed
        batch = collator(examples)
        assert torch.equal(batch["input_ids"][0, :3], torch.tensor([5, 6, 7]))  # prompt untouched
        assert torch.equal(batch["input_ids"][1, :2], torch.tensor([5, 6]))
        assert (batch["labels"][0, :3] == -100).all() and (batch["labels"][1, :2] == -100).all()
        assert torch.equal(batch["answer_lengths"], torch.tensor([3, 2]))
        assert torch.equal(batch["attention_mask"][1], torch.tensor([1, 1, 1, 1, 0, 0]))


def test_sft_pads_answers_with_eos_like_llada():
    tokenizer = build_byte_tokenizer()
    examples = [
        {"input_ids": [65, 66, 67, 68], "labels": [-100, -100, 67, 68]},
        {"input_ids": [65, 66], "labels": [-100, 66]},
    ]
    batch = DataCollatorForMaskedDiffusion(tokenizer=tokenizer, mask=False)(examples)
    assert torch.equal(batch["input_ids"][1], torch.tensor([65, 66, tokenizer.eos_token_id, tokenizer.eos_token_id]))
    assert torch.equal(batch["attention_mask"], torch.ones(2, 4, dtype=torch.long))
    assert torch.equal(batch["labels"][1], torch.tensor([-100, 66, tokenizer.eos_token_id, tokenizer.eos_token_id]))
    masked = DataCollatorForMaskedDiffusion(tokenizer=tokenizer, seed=0)(examples)
    assert torch.equal(masked["answer_lengths"], torch.tensor([2, 3]))


def test_random_length_truncation_draws_in_documented_order():
    collator = DataCollatorForMaskedDiffusion(
        mask_token_id=MASK, pad_token_id=PAD, seed=5, random_length_probability=1.0
    )
    batch = collator(rows(16, 16))
    generator = torch.Generator().manual_seed(batch_seed(5, torch.arange(2, 18).repeat(2, 1)))
    torch.rand(1, generator=generator)
    length = int(torch.randint(1, 17, (1,), generator=generator))
    t = torch.rand(2, generator=generator)
    assert batch["input_ids"].shape == (2, length)
    assert torch.equal(batch["p_mask"][:, 0], (1 - 1e-3) * t + 1e-3)


def test_seeded_masks_depend_on_the_batch_not_on_call_order():
    collator = DataCollatorForMaskedDiffusion(mask_token_id=MASK, pad_token_id=PAD, seed=0)
    a, b = rows(20, 20), rows(20, 20, start=30)
    first_a, first_b = collator(a), collator(b)
    assert torch.equal(collator(b)["input_ids"], first_b["input_ids"])  # order of calls does not matter
    assert torch.equal(collator(a)["input_ids"], first_a["input_ids"])
    assert not torch.equal(first_a["labels"] != -100, first_b["labels"] != -100)
    other_seed = DataCollatorForMaskedDiffusion(mask_token_id=MASK, pad_token_id=PAD, seed=1)(a)
    assert not torch.equal(other_seed["labels"], first_a["labels"])


def test_unseeded_collator_uses_the_global_generator():
    collator = DataCollatorForMaskedDiffusion(mask_token_id=MASK, pad_token_id=PAD)
    torch.manual_seed(4)
    first = collator(rows(20, 20))
    torch.manual_seed(4)
    assert torch.equal(collator(rows(20, 20))["input_ids"], first["input_ids"])


def test_unmasked_mode_returns_clean_batches():
    batch = DataCollatorForMaskedDiffusion(mask_token_id=MASK, pad_token_id=PAD, mask=False)(rows(3, 5))
    assert set(batch) == {"input_ids", "attention_mask"}
    assert torch.equal(batch["input_ids"][1], torch.tensor([2, 3, 4, 5, 6]))


def test_pretraining_loss_equals_hand_computation():
    model = tiny_model()
    batch = DataCollatorForMaskedDiffusion(mask_token_id=MASK, pad_token_id=PAD, seed=11)(rows(12, 12, 12))
    out = model(**batch)
    masked = batch["labels"] != -100
    ce = F.cross_entropy(out.logits[masked], batch["labels"][masked], reduction="none")
    expected = (ce / batch["p_mask"][masked]).sum() / (3 * 12)  # sum CE/p over B*L token slots
    torch.testing.assert_close(out.loss, expected)


def test_sft_loss_equals_hand_computation():
    model = tiny_model()
    examples = [
        {"input_ids": list(range(2, 14)), "labels": [-100] * 4 + list(range(6, 14))},
        {"input_ids": list(range(2, 14)), "labels": [-100] * 9 + list(range(11, 14))},
    ]
    batch = DataCollatorForMaskedDiffusion(mask_token_id=MASK, pad_token_id=PAD, seed=2, eps=0.5)(examples)
    out = model(**batch)
    expected = 0.0
    for b in range(2):
        masked = batch["labels"][b] != -100
        ce = F.cross_entropy(out.logits[b][masked], batch["labels"][b][masked], reduction="sum")
        expected = expected + ce / batch["p_mask"][b, 0] / batch["answer_lengths"][b]
    torch.testing.assert_close(out.loss, expected / 2)


def test_missing_mask_token_is_a_clear_error():
    with pytest.raises(ValueError, match="mask token"):
        DataCollatorForMaskedDiffusion(pad_token_id=PAD)
    with pytest.raises(ValueError, match="eps"):
        DataCollatorForMaskedDiffusion(mask_token_id=MASK, eps=0.0)


def test_stratified_times_put_one_row_in_each_stratum():
    collator = DataCollatorForMaskedDiffusion(
        mask_token_id=MASK, pad_token_id=PAD, eps=1e-3, seed=5, t_sampling="stratified"
    )
    batch = collator(rows(*[12] * 8))
    t = (batch["p_mask"][:, 0] - 1e-3) / (1 - 1e-3)  # (batch,) back to the diffusion times
    strata = torch.floor(t * 8).long()
    assert torch.equal(strata, torch.arange(8))


def test_complementary_masking_scores_every_maskable_token_once_per_pair():
    examples = [
        {"input_ids": [5, 6, 7, 8, 9, 10], "labels": [-100, -100, -100, 8, 9, 10]},
        {"input_ids": [5, 6, 7, 8], "labels": [-100, -100, 7, 8]},
    ]
    plain = DataCollatorForMaskedDiffusion(
        mask_token_id=MASK, pad_token_id=PAD, eps=1e-3, seed=2, pad_answers_with_eos=False
    )
    paired = DataCollatorForMaskedDiffusion(
        mask_token_id=MASK, pad_token_id=PAD, eps=1e-3, seed=2, pad_answers_with_eos=False, complementary_masking=True
    )
    first, batch = plain(examples), paired(examples)
    assert batch["input_ids"].shape == (4, 6)
    for key in first:  # the first half is the ordinary batch
        assert torch.equal(batch[key][:2], first[key])
    scored = batch["labels"] != -100
    answer = torch.tensor([[0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 0, 0]], dtype=torch.bool)
    assert torch.equal(scored[:2] ^ scored[2:], answer)  # each answer token scored in exactly one of the pair
    assert not (scored[:2] & scored[2:]).any()
    t = (first["p_mask"][:, 0] - 1e-3) / (1 - 1e-3)
    assert torch.allclose(batch["p_mask"][2:, 0], (1 - 1e-3) * (1 - t) + 1e-3)
    assert torch.equal(batch["answer_lengths"], torch.tensor([3, 2, 3, 2]))
    assert torch.equal(batch["input_ids"][2:][scored[2:]], torch.full((int(scored[2:].sum()),), MASK))


def test_bad_training_t_sampling_is_refused():
    with pytest.raises(ValueError, match="t_sampling"):
        DataCollatorForMaskedDiffusion(mask_token_id=MASK, t_sampling="antithetic")


def test_exact_masking_masks_ceil_t_n_tokens_and_weighs_n_over_k():
    examples = [
        {"input_ids": list(range(2, 22))},
        {"input_ids": list(range(2, 12))},
        {"input_ids": [5, 6, 7, 8, 9, 10]},
    ]
    for seed in range(10):
        collator = DataCollatorForMaskedDiffusion(
            mask_token_id=MASK, pad_token_id=PAD, eps=1e-3, seed=seed, masking="exact", complementary_masking=True
        )
        batch = collator(examples)
        counts = (batch["labels"] != -100).sum(1)  # (6,)
        n = torch.tensor([20, 10, 6])
        k = counts[:3]
        assert ((k >= 1) & (k <= n)).all()
        whole = k == n  # a row masked whole counts twice (its complement is empty): p_mask halved
        assert torch.allclose(batch["p_mask"][:3, 0], torch.where(whole, k / n / 2, k / n))
        assert torch.equal(counts[3:], n - k)  # the complement masks the rest
        scored = batch["labels"] != -100
        assert not (scored[:3] & scored[3:]).any()  # a token is never masked in both copies
        assert (batch["labels"][1, 10:] == -100).all()  # padding stays clean


def test_exact_masking_count_is_uniform_over_one_to_n():
    collator = DataCollatorForMaskedDiffusion(mask_token_id=MASK, pad_token_id=PAD, seed=0, masking="exact")
    counts = (collator(rows(*[8] * 4000))["labels"] != -100).sum(1)
    frequencies = torch.bincount(counts, minlength=9)[1:].float() / 4000
    assert torch.allclose(frequencies, torch.full((8,), 1 / 8), atol=0.025)
