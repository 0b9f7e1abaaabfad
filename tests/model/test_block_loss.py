"""Block diffusion's loss (BD3-LM) in the two-copy training layout `[noised; clean]`: one vectorised pass gives
the loss and gradients of one pass per block (pretraining and SFT), and in training mode only the labelled positions
go through the head."""

import pytest
import torch

from helpers import MASK, PAD, per_block_reference_loss, random_ids, tiny_model
from llada.training.block_collator import DataCollatorForBlockDiffusion


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
