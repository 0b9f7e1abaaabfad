"""Tensor parallelism through transformers' `tp_plan="auto"`: two CPU processes (gloo) load a tied,
latent-attention model sharded and give the logits of the unsharded model."""

import os
import subprocess

from helpers import TWO_PROCESSES, tiny_model

SCRIPT = r"""
import sys, torch
from torch.distributed.tensor import DTensor
from llada import LLaDAForMaskedDiffusion

folder = sys.argv[1]
sharded = LLaDAForMaskedDiffusion.from_pretrained(folder, tp_plan="auto")
whole = LLaDAForMaskedDiffusion.from_pretrained(folder)
ids = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16]])
with torch.no_grad():
    difference = (sharded(ids).logits - whole(ids).logits).abs().max().item()
head, embedding = sharded.lm_head.weight, sharded.model.embed_tokens.weight
assert isinstance(head, DTensor) and isinstance(embedding, DTensor), (type(head), type(embedding))
assert head.to_local().shape[0] == 50 and embedding.to_local().shape[0] == 50  # vocabulary rows split in two
assert isinstance(sharded.model.layers[0].self_attn.k_up_proj.weight, DTensor)
assert difference < 1e-5, difference
print("tp ok", difference)
"""


def test_two_process_tensor_parallel_matches_the_whole_model(tmp_path):
    folder = tmp_path / "model"
    tiny_model(attention_type="latent", tie_word_embeddings=True).save_pretrained(folder)
    (tmp_path / "tp_check.py").write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    result = subprocess.run(
        [*TWO_PROCESSES, str(tmp_path / "tp_check.py"), str(folder)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("tp ok") == 2
