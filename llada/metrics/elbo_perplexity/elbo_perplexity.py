"""`evaluate` metric: ELBO perplexity bound of a masked-diffusion language model (this project's format) on texts."""

import math

import datasets
import evaluate
import torch

_DESCRIPTION = """
Perplexity bound of a masked-diffusion language model: exp of the masked-diffusion ELBO per token, a Monte Carlo
estimate of an upper bound on the negative log-likelihood (LLaDA, Nie et al. 2025). It is comparable with the
perplexity of an autoregressive model on the same tokens (both: lower is better); here it is an upper bound.
Use this, not `evaluate`'s `perplexity`, which scores left-to-right next-token predictions.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): the texts to score.
    model_id (`str`): folder or Hub id of a model in this project's format.
    tokenizer_id (`str`, *optional*): defaults to `model_id`.
    batch_size (`int`, defaults to 8), num_samples (`int`, defaults to 16): Monte Carlo samples of the
        diffusion time per text, t_sampling (`str`, defaults to "stratified"), seed (`int`, defaults to 0).
    max_length (`int`, *optional*): texts are truncated to this many tokens (default: the model's maximum).
    add_special_tokens (`bool`, defaults to False), device (`str`, *optional*), dtype (`str`, defaults to "float32").
Returns:
    `perplexity_bound` (corpus: exp(total ELBO / total tokens)), `nll_bound` (nats per token), `perplexities`
    (one bound per text), `num_tokens`.
Example:
    >>> metric = evaluate.load("llada/metrics/elbo_perplexity")
    >>> metric.compute(predictions=["To be, or not to be"], model_id="runs/tiny")["perplexity_bound"]
"""

_CITATION = """
@article{nie2025llada, title={Large Language Diffusion Models}, author={Nie, Shen and others}, year={2025},
journal={arXiv:2502.09992}}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ElboPerplexity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string")}),
        )

    def _compute(
        self,
        predictions,
        model_id,
        tokenizer_id=None,
        batch_size=8,
        num_samples=16,
        t_sampling="stratified",
        seed=0,
        max_length=None,
        add_special_tokens=False,
        device=None,
        dtype="float32",
        trust_remote_code=True,
    ):
        from transformers import AutoModel, AutoTokenizer

        from llada.evaluation import elbo_nll

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = (
            AutoModel.from_pretrained(model_id, trust_remote_code=trust_remote_code, dtype=getattr(torch, dtype))
            .to(device)
            .eval()
        )
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_id or model_id)
        max_length = max_length or model.config.max_position_embeddings
        encoded = [tokenizer.encode(text, add_special_tokens=add_special_tokens)[:max_length] for text in predictions]
        if any(len(ids) == 0 for ids in encoded):
            raise ValueError("elbo_perplexity: every prediction must contain at least one token.")
        generator = torch.Generator().manual_seed(seed)
        sequence_nll = []
        for start in range(0, len(encoded), batch_size):
            batch = encoded[start : start + batch_size]
            width = max(len(ids) for ids in batch)
            pad_id = model.config.pad_token_id if model.config.pad_token_id is not None else 0
            input_ids = torch.tensor([ids + [pad_id] * (width - len(ids)) for ids in batch], device=device)
            attention_mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in batch], device=device)
            nll = elbo_nll(
                model, input_ids, attention_mask, num_samples=num_samples, t_sampling=t_sampling, generator=generator
            )  # (batch,) nats per text
            sequence_nll.extend(nll.double().tolist())
        lengths = [len(ids) for ids in encoded]
        nll_per_token = sum(sequence_nll) / sum(lengths)
        return {
            "perplexity_bound": math.exp(nll_per_token),
            "nll_bound": nll_per_token,
            "perplexities": [math.exp(nll / n) for nll, n in zip(sequence_nll, lengths)],
            "num_tokens": sum(lengths),
        }
