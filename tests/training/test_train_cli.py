"""`llada-train`: a tiny end-to-end run for each model type, and the clear errors (parsing: test_run.py)."""

import json

import pytest
from transformers import AutoModel, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from helpers import TINY_TRAIN_ARGS
from llada.cli.train import main


def test_tiny_run_leaves_a_loadable_model_tokenizer_and_plot(tmp_path, capsys):
    out = tmp_path / "llada-tiny"
    assert main(["--output_dir", str(out), "--max_steps", "4", "--eval_steps", "2", *TINY_TRAIN_ARGS]) == 0
    printed = capsys.readouterr().out  # the baseline's command: the same options as an autoregressive run beside it
    assert f"--model_type autoregressive --output_dir {tmp_path / 'autoregressive-tiny'}" in printed
    model = AutoModel.from_pretrained(out, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.mask_token_id == tokenizer.mask_token_id == 258
    assert (out / "loss_curve.png").is_file() and (out / "modeling_llada.py").is_file()
    results = json.loads((out / "eval_results.json").read_text())
    assert results["eval_perplexity_bound"] > 1.0


def test_autoregressive_baseline_run(tmp_path):
    out = tmp_path / "ar"
    assert (
        main(
            [
                "--output_dir",
                str(out),
                "--model_type",
                "autoregressive",
                "--max_steps",
                "3",
                "--eval_steps",
                "3",
                *TINY_TRAIN_ARGS,
            ]
        )
        == 0
    )
    model = LlamaForCausalLM.from_pretrained(out)
    assert (model.config.hidden_size, model.config.num_hidden_layers, model.config.vocab_size) == (32, 2, 259)
    assert json.loads((out / "eval_results.json").read_text())["eval_perplexity"] > 1.0


def test_the_summary_puts_the_baselines_perplexity_beside_the_bound(tmp_path, capsys):
    common = ["--max_steps", "2", "--eval_steps", "2", *TINY_TRAIN_ARGS]
    assert (
        main(["--output_dir", str(tmp_path / "autoregressive-tiny"), "--model_type", "autoregressive", *common]) == 0
    )
    capsys.readouterr()
    assert main(["--output_dir", str(tmp_path / "llada-tiny"), *common]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("AR baseline:"))
    assert "perplexity" in line and line.endswith("x it")


def test_a_llada_run_can_start_from_its_own_autoregressive_stage(tmp_path, capsys):
    out = tmp_path / "llada-tiny"
    assert (
        main(
            [
                "--output_dir",
                str(out),
                "--max_steps",
                "2",
                "--eval_steps",
                "2",
                *TINY_TRAIN_ARGS,
                "--autoregressive_init_steps",
                "3",
                "--autoregressive_init_learning_rate",
                "0.01",
            ]
        )
        == 0
    )
    ar = LlamaForCausalLM.from_pretrained(tmp_path / "llada-tiny-ar-init")  # stage 1, beside the run's folder
    model = AutoModel.from_pretrained(out, trust_remote_code=True)  # stage 2: LLaDA, converted with the shift
    assert model.config.logit_shift and model.config.block_size is None
    assert model.model.embed_tokens.weight.shape == ar.model.embed_tokens.weight.shape
    assert json.loads((tmp_path / "llada-tiny-ar-init" / "trainer_state.json").read_text())["global_step"] == 3
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 2
    stage_1 = tmp_path / "llada-tiny-ar-init" / "model.safetensors"
    first = stage_1.stat().st_mtime_ns
    again = ["--output_dir", str(out), "--max_steps", "2", "--eval_steps", "2", *TINY_TRAIN_ARGS]
    again += ["--autoregressive_init_steps", "3", "--overwrite_output_dir"]
    assert main(again) == 0
    assert stage_1.stat().st_mtime_ns > first  # starting afresh trains stage 1 again too
    with pytest.raises(SystemExit):  # only for a fresh LLaDA model
        main(
            [
                "--output_dir",
                str(out),
                "--model_type",
                "autoregressive",
                *TINY_TRAIN_ARGS,
                "--autoregressive_init_steps",
                "3",
            ]
        )
    assert "--autoregressive_init_steps" in capsys.readouterr().err


def test_init_from_fine_tunes_an_existing_model(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["--output_dir", str(first), "--max_steps", "2", "--eval_strategy", "no", *TINY_TRAIN_ARGS]) == 0
    assert (
        main(
            [
                "--output_dir",
                str(second),
                "--init_from",
                str(first),
                "--max_steps",
                "2",
                "--eval_strategy",
                "no",
                *TINY_TRAIN_ARGS,
            ]
        )
        == 0
    )
    assert AutoModel.from_pretrained(second, trust_remote_code=True).config.hidden_size == 32


def test_init_from_the_autoregressive_baseline_converts_it(tmp_path):
    """The main use of the conversion: the project's own causal LM baseline as the start of a block diffusion model
    with the logit shift, trained, evaluated (the likelihoods and samples read the shifted logits) and saved."""
    baseline, converted = tmp_path / "autoregressive", tmp_path / "from-ar"
    assert (
        main(
            [
                "--output_dir",
                str(baseline),
                "--model_type",
                "autoregressive",
                "--max_steps",
                "2",
                "--eval_strategy",
                "no",
                *TINY_TRAIN_ARGS,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "--output_dir",
                str(converted),
                "--init_from",
                str(baseline),
                "--logit_shift",
                "--block_size",
                "4",
                "--max_steps",
                "2",
                "--eval_steps",
                "2",
                *TINY_TRAIN_ARGS,
            ]
        )
        == 0
    )
    model = AutoModel.from_pretrained(converted, trust_remote_code=True)
    assert (model.config.logit_shift, model.config.block_size, model.config.mask_token_id) == (True, 4, 258)
    results = json.loads((converted / "eval_results.json").read_text())
    assert results["eval_perplexity_bound"] > 1.0


def test_init_from_a_causal_lm_with_full_attention(tmp_path):
    llama = tmp_path / "llama"
    LlamaForCausalLM(
        LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4)
    ).save_pretrained(llama)
    out = tmp_path / "out"
    assert (
        main(
            [
                "--output_dir",
                str(out),
                "--init_from",
                str(llama),
                "--max_steps",
                "2",
                "--eval_strategy",
                "no",
                *TINY_TRAIN_ARGS,
            ]
        )
        == 0
    )
    config = AutoModel.from_pretrained(out, trust_remote_code=True).config
    assert (config.block_size, config.logit_shift, config.vocab_size, config.mask_token_id) == (None, False, 300, 258)


def test_sft_bpe_and_gradient_checkpointing_run(tmp_path):
    data = tmp_path / "sft.jsonl"
    data.write_text(
        "\n".join(json.dumps({"prompt": f"Q{i}: what is {i} plus {i}?\n", "response": f"{2 * i}."}) for i in range(60))
    )
    out = tmp_path / "sft"
    args = [a for a in TINY_TRAIN_ARGS if "wikitext" not in a and a not in ("--train_file", "--validation_file")]
    assert (
        main(
            [
                "--output_dir",
                str(out),
                *args,
                "--sft",
                "--train_file",
                str(data),
                "--tokenizer",
                "bpe",
                "--vocab_size",
                "300",
                "--activation_checkpointing",
                "--max_steps",
                "2",
                "--eval_steps",
                "2",
            ]
        )
        == 0
    )
    assert len(AutoTokenizer.from_pretrained(out)) == 300
    assert json.loads((out / "eval_results.json").read_text())["eval_perplexity_bound"] > 1.0


def test_torch_compile_run(tmp_path):
    """`--torch_compile` trains a few steps (AOT autograd without inductor's code generation, to stay quick)."""
    import math

    from llada.training.run import parse_training_args, run_training

    trainer = run_training(
        *parse_training_args(
            [
                "--output_dir",
                str(tmp_path / "compiled"),
                "--torch_compile",
                "--torch_compile_backend",
                "aot_eager",
                "--max_steps",
                "3",
                "--logging_steps",
                "1",
                "--eval_strategy",
                "no",
                "--random_length_probability",
                "0",
                "--num_sample_generations",
                "0",
                *TINY_TRAIN_ARGS,
            ]
        )
    )
    assert type(trainer.model_wrapped).__name__ == "OptimizedModule"
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 3 and all(math.isfinite(loss) for loss in losses)
    assert (tmp_path / "compiled" / "model.safetensors").is_file()


def test_streaming_run(tmp_path):
    out = tmp_path / "stream"
    assert (
        main(["--output_dir", str(out), "--streaming", "--max_steps", "2", "--eval_steps", "2", *TINY_TRAIN_ARGS]) == 0
    )
    assert (out / "model.safetensors").is_file()


# ---- errors: a clear message, exit status 2, nothing written ----


def run_error(tmp_path, capsys, *extra):
    out = tmp_path / "never-written"
    assert main(["--output_dir", str(out), "--max_steps", "2", *TINY_TRAIN_ARGS, *extra]) == 2
    assert not out.exists()
    return capsys.readouterr().err


def test_init_from_a_model_that_does_not_convert(tmp_path, capsys):
    from transformers import GPT2Config, GPT2LMHeadModel

    from llada.training.tokenizers import build_byte_tokenizer

    gpt2 = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(vocab_size=300, n_embd=32, n_layer=1, n_head=4, n_positions=64)).save_pretrained(gpt2)
    build_byte_tokenizer().save_pretrained(gpt2)
    err = run_error(tmp_path, capsys, "--init_from", str(gpt2))
    assert "Cannot convert a 'gpt2' model" in err and "--model_type autoregressive" in err
    with pytest.raises(SystemExit):  # a usage error, as for --block_size
        main(
            ["--output_dir", str(tmp_path / "ar"), "--model_type", "autoregressive", "--logit_shift", *TINY_TRAIN_ARGS]
        )
    assert "`--logit_shift` is an option of `--model_type llada`" in capsys.readouterr().err


def test_max_seq_length_beyond_the_model_positions(tmp_path, capsys):
    err = run_error(tmp_path, capsys, "--max_position_embeddings", "16")
    assert "--max_seq_length" in err and "max_position_embeddings = 16" in err


def test_empty_corpus_and_missing_column(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("\n\n")
    assert "empty" in run_error(tmp_path, capsys, "--train_file", str(tmp_path / "empty.txt"))
    (tmp_path / "rows.jsonl").write_text('{"body": "hello"}\n' * 20)
    err = run_error(
        tmp_path,
        capsys,
        "--train_file",
        str(tmp_path / "rows.jsonl"),
        "--validation_file",
        str(tmp_path / "rows.jsonl"),
    )
    assert "no column 'text'" in err


def test_non_utf8_file_and_unusable_tokenizer(tmp_path, capsys):
    (tmp_path / "latin.txt").write_bytes("na\xefve\n".encode("latin-1") * 10)
    assert "not UTF-8" in run_error(tmp_path, capsys, "--train_file", str(tmp_path / "latin.txt"))
    assert "--tokenizer" in run_error(tmp_path, capsys, "--tokenizer", str(tmp_path / "no-such-tokenizer"))
