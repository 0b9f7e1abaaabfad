"""lm-eval-harness model type "llada": offline end-to-end run on a tiny local task, and the harness methods
against the estimator they wrap (likelihoods), stop sequences and EOS (generation)."""

import json
from types import SimpleNamespace

import pytest
import torch

from helpers import FIXTURES, tiny_model, tiny_tokenizer

pytest.importorskip("lm_eval")

from llada.cli.harness import main  # noqa: E402
from llada.likelihood import monte_carlo_log_likelihood  # noqa: E402
from llada.lm_eval_harness import LLaDAEvalHarness, _cut_at_stop  # noqa: E402

TASKS = FIXTURES / "lm_eval_tiny"


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A tiny model with a word-level tokenizer (mask token registered) saved like a real checkpoint."""
    folder = tmp_path_factory.mktemp("tiny_llada")
    tokenizer = tiny_tokenizer()
    tokenizer.add_special_tokens({"mask_token": "<|mdm_mask|>"})
    tiny_model(seed=0).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def harness(saved_model):
    return LLaDAEvalHarness(pretrained=str(saved_model), device="cpu", mc_num=8, mc_batch_size=8, seed=3)


def requests(*arguments):
    return [SimpleNamespace(args=args) for args in arguments]


def check_results(results: dict, generation_samples: list):
    assert 0.0 <= results["llada_tiny_mc"]["acc,none"] <= 1.0
    assert 0.0 <= results["llada_tiny_gen"]["exact_match,none"] <= 1.0
    assert results["llada_tiny_rolling"]["word_perplexity,none"] > 1.0
    for sample in generation_samples:  # at most max_gen_toks words, and nothing from the stop sequence on
        assert len(sample["resps"][0][0].split()) <= 4 and "." not in sample["resps"][0][0]


def test_simple_evaluate_runs_the_tiny_local_tasks_by_model_name(saved_model):
    import lm_eval
    from lm_eval.tasks import TaskManager

    output = lm_eval.simple_evaluate(
        model="llada",
        model_args=f"pretrained={saved_model},mc_num=4,mc_batch_size=4",
        device="cpu",
        tasks=["llada_tiny_mc", "llada_tiny_gen", "llada_tiny_rolling"],
        log_samples=True,
        task_manager=TaskManager(include_path=str(TASKS), include_defaults=False),
    )
    print({task: {k: v for k, v in metrics.items() if "," in k} for task, metrics in output["results"].items()})
    check_results(output["results"], output["samples"]["llada_tiny_gen"])


@pytest.mark.slow
def test_lm_eval_command_line_runs_the_tiny_local_tasks(saved_model, tmp_path):
    main(
        [
            "--model",
            "llada",
            "--model_args",
            f"pretrained={saved_model},mc_num=4,mc_batch_size=4",
            "--tasks",
            "llada_tiny_mc,llada_tiny_gen,llada_tiny_rolling",
            "--include_path",
            str(TASKS),
            "--device",
            "cpu",
            "--output_path",
            str(tmp_path),
            "--log_samples",
        ]
    )
    results = json.loads(next(tmp_path.rglob("results_*.json")).read_text())["results"]
    samples = [json.loads(line) for line in next(tmp_path.rglob("samples_llada_tiny_gen_*.jsonl")).open()]
    check_results(results, samples)


def test_loglikelihood_is_the_monte_carlo_estimate_of_the_continuation(harness):
    ((log_likelihood, is_greedy),) = harness.loglikelihood(requests(("question is the cat red ? answer", " no")))
    context = harness.tok_encode("question is the cat red ? answer")
    continuation = harness.tok_encode("question is the cat red ? answer no")[len(context) :]
    assert context[0] == harness.tokenizer.bos_token_id and len(continuation) == 1
    expected = monte_carlo_log_likelihood(harness.model, context, continuation, num_samples=8, batch_size=8, seed=3)
    assert log_likelihood == pytest.approx(expected, abs=1e-6) and is_greedy is False


def test_loglikelihood_rolling_scores_every_token_once(harness):
    text = "the cat sat on the mat ."
    (total,) = harness.loglikelihood_rolling(requests((text,)))
    tokens = harness.tok_encode(text, add_special_tokens=False)
    expected = monte_carlo_log_likelihood(harness.model, [harness.prefix_token_id], tokens, num_samples=8, seed=3)
    assert total == pytest.approx(expected, abs=1e-6)  # one window: the document after BOS
    harness.max_length = 4  # three tokens per window: every token still scored exactly once
    try:
        windowed = harness.loglikelihood_rolling(requests((text,)))[0]
    finally:
        harness.max_length = harness.model.config.max_position_embeddings
    assert windowed < 0 and windowed != total


def test_generate_until_cuts_at_stop_sequences_and_eos(harness, monkeypatch):
    vocab = harness.tokenizer.get_vocab()
    words = "the cat sat . dog"
    eos = harness.tokenizer.eos_token_id
    calls = []

    def fake_generate(input_ids, attention_mask, seed, **settings):
        calls.append((input_ids, attention_mask, settings))
        new = [vocab[w] for w in words.split()] + [eos, vocab["red"], vocab["red"]]
        new = torch.tensor(new[: settings["max_new_tokens"]]).expand(input_ids.shape[0], -1)
        return torch.cat([input_ids, new], dim=1)

    monkeypatch.setattr(harness.model, "diffusion_generate", fake_generate)
    monkeypatch.setattr(harness, "batch_size", 2)
    period = {"until": ["."], "max_gen_toks": 8}
    outputs = harness.generate_until(
        requests(
            ("one two", period),
            ("one", {"until": ["dog"], "max_gen_toks": 8}),
            ("one two three four", period),
            ("one", {"until": ["blue"], "max_gen_toks": 8}),
        )
    )
    # cut at the stop string ".", at "dog", at EOS (no stop string in the text)
    assert outputs == ["the cat sat ", "the cat sat . ", "the cat sat ", "the cat sat . dog"]
    input_ids, attention_mask, settings = calls[0]  # the two requests with the same settings, one batch
    assert settings["max_new_tokens"] == 8 and settings["temperature"] == 0.0
    assert attention_mask.tolist() == [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]  # left padding (BOS + words)


def test_generate_until_with_the_real_sampler(harness, monkeypatch):
    monkeypatch.setattr(harness, "batch_size", 2)
    outputs = harness.generate_until(
        requests(
            ("one two three", {"until": ["."], "max_gen_toks": 4}),
            ("the cat sat on the", {"until": ["."], "max_gen_toks": 4}),
        )
    )
    assert len(outputs) == 2 and all(isinstance(o, str) and "." not in o for o in outputs)


def test_sampled_generations_do_not_depend_on_the_batch(harness, monkeypatch):
    sampled = {"until": ["."], "max_gen_toks": 4, "do_sample": True, "temperature": 1.0}
    prompts = requests(("one two three", sampled), ("the cat sat on the", sampled), ("one", sampled))
    outputs = {}
    for batch_size in (1, 3):
        monkeypatch.setattr(harness, "batch_size", batch_size)
        outputs[batch_size] = harness.generate_until(prompts)
    assert outputs[1] == outputs[3]


def test_cut_at_stop_takes_the_earliest():
    assert _cut_at_stop("abc. def\n\nghi", ["\n\n", "."]) == "abc"
    assert _cut_at_stop("abc", ["x"]) == "abc"


def test_official_checkpoint_is_refused_with_the_conversion_command(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"d_model": 32, "n_heads": 4}))
    with pytest.raises(ValueError, match="llada-convert"):
        LLaDAEvalHarness(pretrained=str(tmp_path), device="cpu")


@pytest.mark.parametrize(
    "saved_block, max_gen_toks, expected",
    [
        (8, 4, dict(max_new_tokens=4, block_length=4)),  # shorter than the saved block: one block
        (8, 12, dict(max_new_tokens=16, block_length=8)),  # whole blocks, cut back to 12 afterwards
        (None, 5, dict(max_new_tokens=5, block_length=5)),
    ],
)
def test_any_max_gen_toks_works_with_the_saved_block_length(harness, monkeypatch, saved_block, max_gen_toks, expected):
    # a model from `make train` saves block_length 8 in generation_config.json; a task may ask for any length
    monkeypatch.setattr(harness.model.generation_config, "block_length", saved_block)
    monkeypatch.setattr(harness.model.generation_config, "steps", 2)  # fewer steps than blocks: raised
    calls = []
    real_generate = harness.model.diffusion_generate

    def recording_generate(**kwargs):
        calls.append(kwargs)
        return real_generate(**kwargs)

    monkeypatch.setattr(harness.model, "diffusion_generate", recording_generate)
    [output] = harness.generate_until(requests(("one two", {"until": ["."], "max_gen_toks": max_gen_toks})))
    settings = calls[0]
    assert {k: settings[k] for k in expected} == expected
    assert settings.get("steps", 2) >= settings["max_new_tokens"] // settings["block_length"]
    assert len(harness.tok_encode(output, add_special_tokens=False)) <= max_gen_toks
