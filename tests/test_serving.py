"""Tests for `llada-serve` (llada/serving): the OpenAI-compatible server, its batching and its errors."""

import torch

from conftest import PAD, varied_model
from llada.sampling_llada import left_pad


def test_seed_per_prompt_samples_each_row_as_alone():
    model = varied_model()
    prompts = [[11, 12, 13, 14, 15], [21, 22, 23], [31]]
    ids, mask = left_pad(prompts, PAD)
    settings = dict(max_new_tokens=8, steps=8, temperature=1.0, remasking="random")
    batch = model.diffusion_generate(ids, mask, seed=[5, 6, 7], num_return_sequences=2, **settings)
    for index, (prompt, seed) in enumerate(zip(prompts, [5, 6, 7])):
        alone = model.diffusion_generate(torch.tensor([prompt]), seed=seed, num_return_sequences=2, **settings)
        assert torch.equal(batch[2 * index:2 * index + 2, -8:], alone[:, -8:])
