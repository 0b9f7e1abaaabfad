"""The local `evaluate` metric modules load offline and agree with the functions of `llada.evaluation`."""

import math

import pytest
import torch

from helpers import tiny_model, tiny_tokenizer

pytest.importorskip("evaluate")

from llada.evaluation import elbo_nll, generative_perplexity  # noqa: E402
from llada.metrics import load_metric, metric_path  # noqa: E402

TEXTS = ["the cat sat on the mat .", "what color is the sky ? blue", "one two three four"]


@pytest.fixture(scope="module")
def tokenizer():
    tokenizer = tiny_tokenizer()
    tokenizer.add_special_tokens({"mask_token": "<|mdm_mask|>"})
    return tokenizer


def test_elbo_perplexity_metric_matches_elbo_nll(tmp_path, tokenizer):
    model = tiny_model(seed=0)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    result = load_metric("elbo_perplexity").compute(
        predictions=TEXTS, model_id=str(tmp_path), batch_size=2, num_samples=4, seed=1, device="cpu"
    )
    generator = torch.Generator().manual_seed(1)
    encoded = [tokenizer.encode(text, add_special_tokens=False) for text in TEXTS]
    total = 0.0
    for batch in (encoded[:2], encoded[2:]):  # right-padded batches of 2, as the metric builds them
        width = max(map(len, batch))
        ids = torch.tensor([row + [0] * (width - len(row)) for row in batch])
        mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in batch])
        total += elbo_nll(model, ids, mask, num_samples=4, generator=generator).double().sum().item()
    num_tokens = sum(map(len, encoded))
    assert result["num_tokens"] == num_tokens and len(result["perplexities"]) == 3
    assert result["perplexity_bound"] == pytest.approx(math.exp(total / num_tokens), rel=1e-5)


def test_generative_perplexity_metric_matches_the_function(tmp_path, tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    judge = GPT2LMHeadModel(GPT2Config(vocab_size=100, n_positions=64, n_embd=32, n_layer=1, n_head=2)).eval()
    judge.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    result = load_metric("generative_perplexity").compute(predictions=TEXTS[:1], model_id=str(tmp_path), device="cpu")
    ids = torch.tensor([tokenizer.encode(TEXTS[0])])
    assert result["generative_perplexity"] == pytest.approx(generative_perplexity(judge, ids), rel=1e-5)


def test_unknown_metric_name_fails_clearly():
    with pytest.raises(ValueError, match="elbo_perplexity"):
        metric_path("accuracy")
