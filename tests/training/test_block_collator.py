"""DataCollatorForBlockDiffusion (llada/training/block_collator.py): one diffusion time per block, exact and
Bernoulli masking, complementary copies sharing one clean copy, in-order blocks, the SFT prompt kept clean, and
the estimators it feeds unbiased."""

import pytest
import torch
import torch.nn.functional as F

from helpers import MASK, PAD, ContextFreeBlockModel, tiny_model
from llada.training.block_collator import DataCollatorForBlockDiffusion
from llada.training.collator import DataCollatorForMaskedDiffusion


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
