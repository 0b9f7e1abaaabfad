"""The project's metrics as local `evaluate` modules (Hub metrics cannot be fetched offline, and `evaluate`'s own
`perplexity` is autoregressive: wrong for a masked-diffusion model).

- `elbo_perplexity`: perplexity bound of a masked-diffusion model on texts (`llada.evaluation.elbo_nll`).
- `generative_perplexity`: perplexity an autoregressive judge model assigns to texts, e.g. generated samples.

Example:

```python
>>> from llada.metrics import load_metric
>>> metric = load_metric("elbo_perplexity")
>>> metric.compute(predictions=["To be, or not to be"], model_id="runs/tiny", num_samples=32)
```
"""

from pathlib import Path

METRICS_DIR = Path(__file__).resolve().parent
METRIC_NAMES = ("elbo_perplexity", "generative_perplexity")


def metric_path(name: str) -> str:
    """Folder of a local metric module, for `evaluate.load(metric_path(name))`."""
    if name not in METRIC_NAMES:
        raise ValueError(f"Unknown metric {name!r}; the local metrics are {METRIC_NAMES}.")
    return str(METRICS_DIR / name)


def load_metric(name: str, **kwargs):
    """`evaluate.load` of one of the local metric modules (no network)."""
    import evaluate

    return evaluate.load(metric_path(name), **kwargs)


__all__ = ["METRIC_NAMES", "METRICS_DIR", "load_metric", "metric_path"]
