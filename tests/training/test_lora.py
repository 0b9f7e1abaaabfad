"""LoRA fine-tuning with PEFT through `llada-train --lora_r` (llada/training/lora.py): only the adapter trains, the
adapter loads with `PeftModel`, generates through the wrapper and merges into a full model."""

import json

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer

from helpers import TINY_TRAIN_ARGS
from llada.cli.train import main
from llada.training.run import parse_training_args, run_training

LORA_TINY = [a for a in TINY_TRAIN_ARGS if "wikitext" not in a and a not in ("--train_file", "--validation_file")]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lora") / "base"
    # trained enough that its head and norms are of use: a LoRA adapter cannot change those
    assert (
        main(
            [
                "--output_dir",
                str(folder),
                "--max_steps",
                "40",
                "--learning_rate",
                "0.01",
                "--eval_strategy",
                "no",
                "--num_sample_generations",
                "0",
                *TINY_TRAIN_ARGS,
            ]
        )
        == 0
    )
    return folder


@pytest.fixture(scope="module")
def sft_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sft") / "sft.jsonl"
    path.write_text(
        "\n".join(json.dumps({"prompt": f"Q{i % 7}: ", "response": "yes" if i % 7 % 2 else "no"}) for i in range(64))
    )
    return path


@pytest.fixture(scope="module")
def lora_run(base, sft_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("lora") / "adapter"
    args = ["--output_dir", str(out), "--init_from", str(base), "--sft", "--train_file", str(sft_file), "--merge_lora"]
    args += "--lora_r 4 --max_steps 30 --learning_rate 0.02 --logging_steps 1 --eval_on_start --eval_steps 30".split()
    args += ["--warmup_steps", "0", "--num_sample_generations", "0", *LORA_TINY]
    return out, run_training(*parse_training_args(args))


def test_only_the_adapter_trains_and_the_loss_falls(base, lora_run):
    out, trainer = lora_run
    base_weights = load_file(base / "model.safetensors")
    trained = {
        name.replace("base_model.model.", "").replace(".base_layer", ""): p
        for name, p in trainer.model.named_parameters()
        if "lora_" not in name
    }
    assert set(trained) == set(base_weights)
    assert all(torch.equal(trained[name], base_weights[name]) for name in base_weights)  # bit-identical
    lora_b = [p for name, p in trainer.model.named_parameters() if "lora_B" in name]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)  # initialised at zero, so changed by training
    assert {n.split(".")[-3] for n, p in trainer.model.named_parameters() if p.requires_grad} == {"lora_A", "lora_B"}
    targets = {name.split(".")[-2] for name, _ in trainer.model.named_modules() if name.endswith("lora_A")}
    assert targets == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    evaluations = [entry["eval_loss"] for entry in trainer.state.log_history if "eval_loss" in entry]
    assert len(evaluations) >= 2 and evaluations[-1] < 0.85 * evaluations[0]  # the seeded ELBO, steps 0 and 30


def test_the_adapter_loads_generates_through_the_wrapper_and_merges(base, lora_run):
    out, _ = lora_run
    names = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= names
    assert "model.safetensors" not in names
    wrapped = PeftModel.from_pretrained(AutoModel.from_pretrained(base, trust_remote_code=True), out).eval()
    merged = AutoModel.from_pretrained(out / "merged", trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    inputs = tokenizer(["Q3: ", "Q4: "], return_tensors="pt")
    settings = dict(max_new_tokens=8, steps=8, temperature=0.0)
    through_wrapper = wrapped.diffusion_generate(**inputs, **settings)
    assert through_wrapper.shape == (2, inputs["input_ids"].shape[1] + 8)
    # the merged model computes the adapted function to float rounding (greedy tokens may flip at a near tie)
    torch.testing.assert_close(
        wrapped(input_ids=through_wrapper).logits, merged(input_ids=through_wrapper).logits, atol=1e-4, rtol=1e-4
    )
    plain = AutoModel.from_pretrained(base, trust_remote_code=True).eval()
    assert not torch.equal(plain(**inputs).logits, merged(**inputs).logits)  # the merged weights are the adapted ones


def test_lora_with_reentrant_activation_checkpointing_trains_the_adapter(base, sft_file, tmp_path):
    args = ["--output_dir", str(tmp_path / "gc"), "--init_from", str(base), "--sft", "--train_file", str(sft_file)]
    args += "--lora_r 2 --lora_target_modules q_proj,v_proj --activation_checkpointing".split()
    args += ["--activation_checkpointing_kwargs", '{"use_reentrant": true}']
    args += [*"--max_steps 2 --learning_rate 0.02 --eval_strategy no".split(), *LORA_TINY]
    trainer = run_training(*parse_training_args(args))
    lora_b = {name: p for name, p in trainer.model.named_parameters() if "lora_B" in name}
    assert {name.split(".")[-4] for name in lora_b} == {"q_proj", "v_proj"}
    assert all(p.abs().sum() > 0 for p in lora_b.values())  # gradients reached the checkpointed layers


def test_lora_option_errors(base, capsys):
    for extra, message in (
        (["--lora_r", "4"], "`--lora_r` needs `--init_from`"),
        (["--merge_lora"], "`--merge_lora` needs `--lora_r`"),
        (["--lora_r", "0", "--init_from", str(base)], "`--lora_r` must be an integer >= 1"),
    ):
        with pytest.raises(SystemExit):
            parse_training_args(["--max_steps", "1", *extra])
        assert message in capsys.readouterr().err
