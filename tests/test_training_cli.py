"""`llada-train`: argument parsing (YAML, aliases), a tiny end-to-end run for each model type, the clear errors."""

import json
from pathlib import Path

import pytest
from transformers import AutoModel, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from llada.cli.train import main, parse_args

FIXTURES = Path(__file__).parent / "fixtures"
TINY = ["--hidden_size", "32", "--num_hidden_layers", "2", "--num_attention_heads", "4", "--intermediate_size", "64",
        "--max_seq_length", "32", "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "8",
        "--train_file", str(FIXTURES / "wikitext-2-test-excerpt.txt"),
        "--validation_file", str(FIXTURES / "wikitext-2-valid-excerpt.txt"), "--max_eval_samples", "8",
        "--use_cpu", "--report_to", "none", "--dataloader_num_workers", "0", "--disable_tqdm", "true",
        "--eval_num_t_samples", "2", "--sample_max_new_tokens", "8", "--sample_prompt_length", "4"]


def test_defaults_are_the_tinyshakespeare_job():
    model_args, data_args, training_args = parse_args([])
    assert data_args.train_file is None and data_args.dataset_name is None  # bundled corpus
    assert model_args.model_type == "llada" and model_args.tokenizer == "bytes"
    assert training_args.eval_strategy == "steps" and training_args.load_best_model_at_end
    assert training_args.save_steps == training_args.eval_steps
    assert training_args.report_to == ["tensorboard"]


def test_yaml_config_aliases_and_flag_precedence(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("epochs: 3\nbatch_size: 5\nhidden_size: 48\nmodel_dir: from-yaml\nlearning_rate: 0.01\n")
    model_args, data_args, training_args = parse_args(["--config", str(config), "--hidden_size", "64",
                                                       "--lr=0.02", "--max_steps", "-1"])
    assert training_args.num_train_epochs == 3 and training_args.per_device_train_batch_size == 5
    assert model_args.hidden_size == 64 and training_args.learning_rate == 0.02  # flags win over the file
    assert training_args.output_dir == "from-yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text("hiden_size: 3\n")
    with pytest.raises(SystemExit):
        parse_args(["--config", str(bad)])


def test_tiny_run_leaves_a_loadable_model_tokenizer_and_plot(tmp_path):
    out = tmp_path / "out"
    assert main(["--output_dir", str(out), "--max_steps", "4", "--eval_steps", "2", *TINY]) == 0
    model = AutoModel.from_pretrained(out, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.mask_token_id == tokenizer.mask_token_id == 258
    assert (out / "loss_curve.png").is_file() and (out / "modeling_llada.py").is_file()
    results = json.loads((out / "eval_results.json").read_text())
    assert results["eval_perplexity_bound"] > 1.0


def test_autoregressive_baseline_run(tmp_path):
    out = tmp_path / "ar"
    assert main(["--output_dir", str(out), "--model_type", "autoregressive", "--max_steps", "3",
                 "--eval_steps", "3", *TINY]) == 0
    model = LlamaForCausalLM.from_pretrained(out)
    assert (model.config.hidden_size, model.config.num_hidden_layers, model.config.vocab_size) == (32, 2, 259)
    assert json.loads((out / "eval_results.json").read_text())["eval_perplexity"] > 1.0


def test_init_from_fine_tunes_an_existing_model(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["--output_dir", str(first), "--max_steps", "2", "--eval_strategy", "no", *TINY]) == 0
    assert main(["--output_dir", str(second), "--init_from", str(first), "--max_steps", "2",
                 "--eval_strategy", "no", *TINY]) == 0
    assert AutoModel.from_pretrained(second, trust_remote_code=True).config.hidden_size == 32


def test_sft_bpe_and_gradient_checkpointing_run(tmp_path):
    data = tmp_path / "sft.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": f"Q{i}: what is {i} plus {i}?\n", "response": f"{2 * i}."})
                              for i in range(60)))
    out = tmp_path / "sft"
    args = [a for a in TINY if "wikitext" not in a and a not in ("--train_file", "--validation_file")]
    assert main(["--output_dir", str(out), "--sft", "--train_file", str(data), "--tokenizer", "bpe",
                 "--vocab_size", "300", "--activation_checkpointing", "--max_steps", "2", "--eval_steps", "2",
                 *args]) == 0
    assert len(AutoTokenizer.from_pretrained(out)) == 300
    assert json.loads((out / "eval_results.json").read_text())["eval_perplexity_bound"] > 1.0


def test_streaming_run(tmp_path):
    out = tmp_path / "stream"
    assert main(["--output_dir", str(out), "--streaming", "--max_steps", "2", "--eval_steps", "2", *TINY]) == 0
    assert (out / "model.safetensors").is_file()


# ---- errors: a clear message, exit status 2, nothing written ----


def run_error(tmp_path, capsys, *extra):
    out = tmp_path / "never-written"
    assert main(["--output_dir", str(out), "--max_steps", "2", *TINY, *extra]) == 2
    assert not out.exists()
    return capsys.readouterr().err


def test_init_from_a_non_llada_model(tmp_path, capsys):
    llama = tmp_path / "llama"
    LlamaForCausalLM(LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                 num_attention_heads=4)).save_pretrained(llama)
    err = run_error(tmp_path, capsys, "--init_from", str(llama))
    assert "not a LLaDA model" in err and "'llama'" in err


def test_max_seq_length_beyond_the_model_positions(tmp_path, capsys):
    err = run_error(tmp_path, capsys, "--max_position_embeddings", "16")
    assert "--max_seq_length" in err and "max_position_embeddings = 16" in err


def test_empty_corpus_and_missing_column(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("\n\n")
    assert "empty" in run_error(tmp_path, capsys, "--train_file", str(tmp_path / "empty.txt"))
    (tmp_path / "rows.jsonl").write_text('{"body": "hello"}\n' * 20)
    err = run_error(tmp_path, capsys, "--train_file", str(tmp_path / "rows.jsonl"), "--validation_file",
                    str(tmp_path / "rows.jsonl"))
    assert "no column 'text'" in err


def test_non_utf8_file_and_unusable_tokenizer(tmp_path, capsys):
    (tmp_path / "latin.txt").write_bytes("na\xefve\n".encode("latin-1") * 10)
    assert "not UTF-8" in run_error(tmp_path, capsys, "--train_file", str(tmp_path / "latin.txt"))
    assert "--tokenizer" in run_error(tmp_path, capsys, "--tokenizer", str(tmp_path / "no-such-tokenizer"))
