"""Training: data loading and packing, tokenizers, the masked-diffusion collator, the Trainer and its callbacks, and
the whole run behind `llada-train` (`run.py`)."""
