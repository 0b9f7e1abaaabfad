"""`evaluate` metric: perplexity an autoregressive judge model assigns to texts (e.g. a diffusion model's samples)."""

import datasets
import evaluate
import torch

_DESCRIPTION = """
Generative perplexity: exp of the mean next-token negative log-likelihood that an autoregressive model (the judge,
e.g. GPT-2) assigns to texts, typically samples of a diffusion model. Lower means the judge finds them more
natural; compare it with the judge's perplexity on real text, and watch for degenerate repetitive samples, which
score deceptively well.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): the texts to score.
    model_id (`str`): folder or Hub id of a causal language model (the judge).
    batch_size (`int`, defaults to 8), max_length (`int`, *optional*), device (`str`, *optional*).
Returns:
    `generative_perplexity` over all scored tokens of all texts.
Example:
    >>> metric = evaluate.load("llada/metrics/generative_perplexity")
    >>> metric.compute(predictions=samples, model_id="gpt2")["generative_perplexity"]
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class GenerativePerplexity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string")}),
        )

    def _compute(self, predictions, model_id, batch_size=8, max_length=None, device=None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from llada.evaluation import generative_perplexity

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        judge = AutoModelForCausalLM.from_pretrained(model_id).to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(model_id)
        max_length = max_length or getattr(judge.config, "max_position_embeddings", None) or 1024
        encoded = [tokenizer.encode(text)[:max_length] for text in predictions]
        if any(len(ids) < 2 for ids in encoded):
            raise ValueError("generative_perplexity: every prediction needs at least two tokens to be scored.")
        width = max(len(ids) for ids in encoded)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        sequences = torch.tensor([ids + [pad_id] * (width - len(ids)) for ids in encoded])
        attention_mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in encoded])
        value = generative_perplexity(judge, sequences, attention_mask, batch_size=batch_size)
        return {"generative_perplexity": value}
