"""benchmarks/sample_quality.py: the word figures on hand-made texts (exact where they are counts), the Kneser-Ney
trigram model's distributions, and the script's table on a tiny model."""

import json
import math
import random
import sys

import pytest

from helpers import ROOT, tiny_byte_model

sys.path.insert(0, str(ROOT / "benchmarks"))

import sample_quality as quality  # noqa: E402

TRAINING = "The cat sat on the mat. The dog sat on the cat!"
CORPUS = (ROOT / "llada" / "data" / "tinyshakespeare.txt").read_text(encoding="utf-8")


def test_bigram_hit_rate_counts_inner_bigrams_found_in_the_training_text():
    bigrams = quality.TrainingText(TRAINING).bigrams
    assert ("sat", "on") in bigrams and ("mat", "the") in bigrams and ("on", "a") not in bigrams
    # inner words "the cat sat on a mat": the-cat, cat-sat, sat-on found; on-a, a-mat not
    assert quality.bigram_hit_rate(["xx the cat sat on a mat yy"], bigrams) == pytest.approx(3 / 5)
    # pooled over samples, never across them: + "the the cat" (the-the no, the-cat yes)
    assert quality.bigram_hit_rate(["xx the cat sat on a mat yy", "A the the cat B"], bigrams) == pytest.approx(4 / 7)
    # lower-cased, punctuation and stray apostrophes dropped: the-cat's no, cat's-sat no, sat-on yes, on-the yes
    assert quality.bigram_hit_rate(["Dog. THE CAT'S sat, on: the mat"], bigrams) == pytest.approx(2 / 4)
    assert quality.bigram_hit_rate(["one two", ""], bigrams) == 0.0  # no inner bigram at all


def test_lowest_order_gives_unknown_words_the_uniform_share():
    model = quality.KneserNeyTrigram("a b a b c".split())
    # bigram types ab, ba, bc: N1+(. a) = N1+(. b) = N1+(. c) = 1 of 3; V = {a, b, c, <unk>}
    assert model.probability("zzz") == pytest.approx(0.75 * 3 / 4 / 3)
    assert model.probability("b") == pytest.approx((1 - 0.75 + 0.75 * 3 / 4) / 3)
    assert model.probability("zzz") == model.probability(quality.UNK)


@pytest.mark.parametrize(
    "context",
    [
        (),
        ("the",),
        ("the", "cat"),
        ("sat", "on"),
        ("on", "the"),
        ("zebra",),
        ("zebra", "the"),
        ("cat", "zebra"),
        ("mat", "the"),
        ("dog", "dog"),
    ],
)
def test_probabilities_sum_to_one_over_the_vocabulary(context):
    model = quality.KneserNeyTrigram(quality.words_of(TRAINING))
    assert model.vocabulary == {"the", "cat", "sat", "on", "mat", "dog", quality.UNK}
    assert sum(model.probability(w, context) for w in model.vocabulary) == pytest.approx(1.0, abs=1e-12)
    assert all(model.probability(w, context) > 0 for w in model.vocabulary)


def test_probabilities_sum_to_one_on_a_real_corpus():
    model = quality.KneserNeyTrigram(quality.words_of(CORPUS[:20_000]))
    for context in [(), ("my",), ("my", "lord"), ("i", "am"), ("to", "be"), ("never", "seen")]:
        assert sum(model.probability(w, context) for w in model.vocabulary) == pytest.approx(1.0, abs=1e-9)


def test_seen_trigrams_beat_backing_off():
    model = quality.KneserNeyTrigram(quality.words_of(TRAINING))
    assert model.probability("mat", ("on", "the")) > model.probability("mat", ("the",)) > model.probability("mat")
    assert model.probability("sat", ("the", "cat")) > model.probability("dog", ("the", "cat"))


def test_word_order_is_what_the_trigram_perplexity_judges():
    train, heldout = CORPUS[:60_000], CORPUS[60_000:70_000]
    model = quality.KneserNeyTrigram(quality.words_of(train))
    rng = random.Random(0)
    for text, factor in ((train[:10_000], 0.2), (heldout, 0.8)):  # in its own order, even unseen text scores better
        words = quality.words_of(text)
        shuffled = rng.sample(words, len(words))
        assert model.perplexity([words]) < factor * model.perplexity([shuffled])
    assert model.perplexity([quality.words_of(train[:10_000])]) < model.perplexity([quality.words_of(heldout)])
    assert math.isfinite(model.perplexity([["qwxz", "zzyzx", "lord"]]))  # unknown words: finite
    assert math.isnan(model.perplexity([[]]))


def test_trigram_model_refuses_bad_arguments():
    with pytest.raises(ValueError, match="discount"):
        quality.KneserNeyTrigram(["a", "b", "c"], discount=1.0)
    with pytest.raises(ValueError, match="three"):
        quality.KneserNeyTrigram(["a", "b"])


def test_figures_of_a_list_of_speaker_names_show_the_word_order():
    training = quality.TrainingText(CORPUS)
    names = ["x KING RICHARD DUKE GLOUCESTER KING ROMEO NURSE DUKE JULIET y"]
    prose = ["x I will not be so bold as to say that my lord is gone y"]
    by_names, by_prose = training.figures(names), training.figures(prose)
    assert by_names["word_validity"] == by_prose["word_validity"] == 1.0  # every word valid in both
    assert by_names["bigram_hit_rate"] < by_prose["bigram_hit_rate"]
    assert by_names["trigram_perplexity"] > by_prose["trigram_perplexity"]


def test_script_reports_the_figures_and_ratios_for_samples_and_text(tmp_path, capsys):

    model, tokenizer = tiny_byte_model()
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    (tmp_path / "train.txt").write_text(CORPUS[:30_000])
    (tmp_path / "valid.txt").write_text(CORPUS[30_000:34_000])
    out = tmp_path / "quality.md"
    assert (
        quality.main(
            [
                str(tmp_path / "model"),
                "--num_samples",
                "2",
                "--prompt_bytes",
                "8",
                "--new_bytes",
                "64",
                "--steps",
                "4",
                "--temperature",
                "1.0",
                "--train_file",
                str(tmp_path / "train.txt"),
                "--validation_file",
                str(tmp_path / "valid.txt"),
                "--output",
                str(out),
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    header, model_row, text_row = lines[1], lines[3], lines[4]  # a markdown table under the heading line
    assert "bigram hits" in header and "3-gram PPL" in header and header.count("/ text") == 2
    assert str(tmp_path / "model") in model_row and text_row.startswith("| held-out text")
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    figures, reference = rows[0], rows[-1]
    assert 0.2 < reference["bigram_hit_rate"] <= 1 and 1 < reference["trigram_perplexity"] < math.inf
    assert figures["ratio_to_text"]["trigram_perplexity"] == pytest.approx(
        figures["trigram_perplexity"] / reference["trigram_perplexity"]
    )
    assert figures["ratio_to_text"]["bigram_hit_rate"] == pytest.approx(
        figures["bigram_hit_rate"] / reference["bigram_hit_rate"]
    )
