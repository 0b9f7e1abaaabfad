"""Sample quality of a trained model as a reader judges it: words, repetition, word order, generative perplexity.

    python benchmarks/sample_quality.py runs/llada-tinyshakespeare --ar_dir runs/compare/autoregressive
    python benchmarks/sample_quality.py runs/llada-tinyshakespeare --remasking low_confidence --temperature 0.5
    python benchmarks/sample_quality.py runs/compare/autoregressive          # an autoregressive model works too

Prompts are `--prompt_bytes` of text starting at line starts spread evenly over the held-out tail of the corpus
(the validation split `llada-train` cuts off by default); each prompt is continued by about `--new_bytes` bytes
(as many tokens as that text takes with the model's tokenizer). With a LLaDA model the sampler settings are the
model's saved generation defaults (`generation_config.json`, what `llada-generate` uses) unless given here.

- *word validity*: the share of the generated words (`[A-Za-z']+`, lower-cased; not the first or last word of a
  sample, which the prompt or the length may cut) that occur in the training text;
- *distinct-2*: distinct word bigrams / all word bigrams over all samples (a repetition guard: validity alone
  rewards "the the the");
- *bigram hits*: the share of the samples' word bigrams (of the same inner words) that occur in the training text,
  and the *trigram perplexity*: the perplexity of the samples' inner words under an interpolated Kneser-Ney
  word-trigram model of the training text (words it never saw share one `<unk>` class). Both judge word order,
  which word validity does not: a list of speaker names ("KING: DUKE: ...") is all valid words (the bundled
  corpus's held-out text: 0.54 of its bigrams found, trigram perplexity about 750);
- *generative perplexity*: the perplexity an autoregressive model with the same tokenizer (`--ar_dir`) assigns to
  the generated tokens given the prompt.

The same figures for the held-out text that follows the same prompts are printed as a reference, and the ratios
sample / text of the bigram hits and the trigram perplexity beside each model's. One thread unless `--threads`; each
prompt is sampled with the seeds `--seed` .. `--seed + --seeds - 1`; `--output` writes the table (markdown) and every
figure and sample (its JSON).
"""

import argparse
import json
import math
import re
import sys
import time
from collections import Counter

import torch

import common

WORD = re.compile(r"[A-Za-z']+")


# ----------------------------------------------------------------------------------------------------------------
# metrics


def words_of(text: str) -> list:
    """The lower-cased words (`[A-Za-z']+`) of `text`, stray apostrophes stripped."""
    return [w for w in (m.group(0).strip("'").lower() for m in WORD.finditer(text)) if w]


def inner_words(text: str) -> list:
    """The words of a sample without its first and last one (the prompt or the length may cut those)."""
    return words_of(text)[1:-1]


def word_validity(samples: list, vocabulary: set) -> float:
    """Share of the samples' inner words found in `vocabulary`; 0 when they hold no word at all (nothing valid was
    written, and a number keeps tables and comparisons working)."""
    words = [w for text in samples for w in inner_words(text)]
    return sum(w in vocabulary for w in words) / len(words) if words else 0.0


def distinct_n(samples: list, n: int = 2) -> float:
    """Distinct word n-grams / all word n-grams, pooled over the samples (n-grams do not cross samples)."""
    grams = [tuple(ws[i : i + n]) for ws in map(inner_words, samples) for i in range(len(ws) - n + 1)]
    return len(set(grams)) / len(grams) if grams else float("nan")


def bigram_hit_rate(samples: list, bigrams: set) -> float:
    """Share of the samples' inner word bigrams found in `bigrams` (the training text's); 0 when they hold none.
    Bigrams do not cross samples."""
    grams = [pair for ws in map(inner_words, samples) for pair in zip(ws, ws[1:])]
    return sum(pair in bigrams for pair in grams) / len(grams) if grams else 0.0


UNK = "<unk>"


class KneserNeyTrigram:
    r"""
    An interpolated Kneser-Ney word-trigram model (Chen & Goodman, "An empirical study of smoothing techniques for
    language modeling", 1998) with one absolute discount D for every order:

        P3(w | u v) = max(c(u v w) - D, 0) / c(u v .)  +  D N1+(u v .) / c(u v .)  P2(w | v)
        P2(w | v)   = max(N1+(. v w) - D, 0) / N1+(. v .)  +  D N1+(v .) / N1+(. v .)  P1(w)
        P1(w)       = max(N1+(. w) - D, 0) / N1+(. .)  +  D |{w : N1+(. w) > 0}| / N1+(. .)  / |V|

    with c the trigram counts of the training words, N1+(. v w) the number of distinct words seen before `v w` (the
    continuation counts the lower orders use instead of counts), N1+(v .) the number of distinct words seen after
    `v` in them, and a context never seen leaving all its mass to the order below. The vocabulary V is the training
    words and `<unk>`, to which every other word is mapped: the uniform term of P1 gives it, like every word, a
    share, so each distribution sums to 1 over V and the perplexity of any text is finite.

    Args:
        words (`list[str]`):
            The training text as one sequence of words (at least three).
        discount (`float`, *optional*, defaults to 0.75):
            The absolute discount D, in (0, 1).
    """

    def __init__(self, words: list, discount: float = 0.75):
        if not 0 < discount < 1:
            raise ValueError(f"`discount` must be in (0, 1), got {discount}.")
        if len(words) < 3:
            raise ValueError(f"A trigram model needs at least three training words, got {len(words)}.")
        self.discount = discount
        self.vocabulary = set(words) | {UNK}
        self.trigrams = Counter(zip(words, words[1:], words[2:]))  # c(u v w)
        self.context_count, self.context_types = Counter(), Counter()  # c(u v .), N1+(u v .)
        for (u, v, _), count in self.trigrams.items():
            self.context_count[u, v] += count
            self.context_types[u, v] += 1
        self.bigram_continuations = Counter((v, w) for _, v, w in self.trigrams)  # N1+(. v w)
        self.middle_total, self.middle_types = Counter(), Counter()  # N1+(. v .), N1+(v .)
        for (v, _), count in self.bigram_continuations.items():
            self.middle_total[v] += count
            self.middle_types[v] += 1
        bigram_types = set(zip(words, words[1:]))
        self.unigram_continuations = Counter(w for _, w in bigram_types)  # N1+(. w)
        self.unigram_total = len(bigram_types)  # N1+(. .)

    def _word(self, word: str) -> str:
        return word if word in self.vocabulary else UNK

    def probability(self, word: str, context: tuple = ()) -> float:
        """P(`word` | the last two words of `context`) (fewer when `context` is shorter); unknown words are `<unk>`."""
        d, w = self.discount, self._word(word)
        context = tuple(self._word(c) for c in context[-2:])
        p = (
            max(self.unigram_continuations[w] - d, 0) + d * len(self.unigram_continuations) / len(self.vocabulary)
        ) / self.unigram_total
        if context:
            v = context[-1]
            total = self.middle_total[v]
            if total:
                p = (max(self.bigram_continuations[v, w] - d, 0) + d * self.middle_types[v] * p) / total
        if len(context) == 2:
            total = self.context_count[context]
            if total:
                p = (max(self.trigrams[(*context, w)] - d, 0) + d * self.context_types[context] * p) / total
        return p

    def perplexity(self, sequences: list) -> float:
        """exp of the mean negative log-probability of the words of `sequences` (lists of words), each word given up
        to two words before it in its own sequence; NaN when there is no word."""
        log_probs = [
            math.log(self.probability(w, tuple(words[max(i - 2, 0) : i])))
            for words in sequences
            for i, w in enumerate(words)
        ]
        return math.exp(-sum(log_probs) / len(log_probs)) if log_probs else float("nan")


def trigram_perplexity(samples: list, model: KneserNeyTrigram) -> float:
    """Perplexity of the samples' inner words under `model` (a word-trigram model of the training text)."""
    return model.perplexity([inner_words(text) for text in samples])


class TrainingText:
    """
    What the word figures compare a text with: the training text's vocabulary, its word bigrams and a Kneser-Ney
    word-trigram model fitted on it.

    Args:
        text (`str`): the training text.
    """

    def __init__(self, text: str):
        words = words_of(text)
        self.vocabulary = set(words)
        self.bigrams = set(zip(words, words[1:]))
        self.trigram = KneserNeyTrigram(words)

    def figures(self, samples: list) -> dict:
        """Word validity, distinct-2, bigram hit rate and trigram perplexity of `samples` (texts)."""
        return {
            "word_validity": word_validity(samples, self.vocabulary),
            "distinct_2": distinct_n(samples, 2),
            "bigram_hit_rate": bigram_hit_rate(samples, self.bigrams),
            "trigram_perplexity": trigram_perplexity(samples, self.trigram),
        }


def sliding_perplexity(ar_model, prompts, generated, context: int) -> float:
    """The generative perplexity (`llada.evaluation.generative_nll`) of the generated tokens under `ar_model`, each
    token seen with up to `context - 1` tokens before it (windows of `context` tokens, advancing by half of it), for
    samples longer than the AR model's positions."""
    from llada.evaluation import generative_nll

    sequences = torch.cat([prompts, generated], dim=1)  # (batch, seq)
    seq, stride = sequences.shape[1], max(context // 2, 1)
    total_nll, count = 0.0, 0
    scored_until = prompts.shape[1]  # tokens before this index are scored already (or are the prompt)
    end = min(seq, context)
    while scored_until < seq:
        start = max(0, end - context)
        window = sequences[:, start:end]  # scores the tokens at positions scored_until .. end - 1
        nll, n = generative_nll(ar_model, window, prompt_length=scored_until - start, batch_size=len(window))
        total_nll, count = total_nll + nll, count + n
        scored_until, end = end, min(seq, end + stride)
    return math.exp(total_nll / count)


# ----------------------------------------------------------------------------------------------------------------
# data and models


def corpus_splits(data_args=None):
    """(training text, held-out text) of the corpus `llada-train` reads with `data_args` (default: the bundled
    TinyShakespeare, 5 % held out at its tail)."""
    from llada.training.data import DataArguments, load_raw_datasets

    raw = load_raw_datasets(data_args if data_args is not None else DataArguments())
    column = data_args.text_column if data_args is not None else "text"
    return "\n".join(raw["train"][column]), "\n".join(raw["validation"][column])


def prompts_from(text: str, count: int, prompt_bytes: int, new_bytes: int) -> list:
    """`count` prompts of `prompt_bytes` characters starting at line starts spread evenly over `text`, each with the
    `new_bytes` characters that follow it (the reference continuation)."""
    span = prompt_bytes + new_bytes
    starts, limit = [], len(text) - span
    for k in range(count):
        start = text.find("\n", int(k * limit / count)) + 1
        starts.append(min(start, limit))
    return [(text[s : s + prompt_bytes], text[s + prompt_bytes : s + span]) for s in starts]


def load_model(model_dir: str):
    """A LLaDA model (AutoModel, remote code) or a causal LM from `model_dir`, in eval mode, with its tokenizer."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    import llada  # noqa: F401  (registers the Auto classes)

    config = AutoConfig.from_pretrained(model_dir)
    is_llada = getattr(config, "model_type", None) == "llada"
    cls = AutoModel if is_llada else AutoModelForCausalLM
    model = cls.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    return model, tokenizer, is_llada


def new_tokens_for(tokenizer, text: str, new_bytes: int, multiple: int = 1) -> int:
    """How many tokens `new_bytes` characters of `text` take with `tokenizer` (rounded up to `multiple`)."""
    ids = tokenizer(text[:200_000], add_special_tokens=False)["input_ids"]
    tokens = math.ceil(new_bytes * len(ids) / len(text[:200_000]))
    return -(-tokens // multiple) * multiple


def sampler_settings(model, options) -> dict:
    """The LLaDA sampler settings: the model's saved generation defaults, overridden by the command line."""
    config = model.generation_config
    settings = {
        name: getattr(config, name, None)
        for name in (
            "steps",
            "block_length",
            "temperature",
            "remasking",
            "top_k",
            "top_p",
            "threshold",
            "factor",
            "entropy_bound",
        )
    }
    for name in settings:
        value = getattr(options, name, None)
        if value is not None:
            settings[name] = value
    return settings


@torch.no_grad()
def generate(model, tokenizer, is_llada, prompts, max_new_tokens, settings, seed):
    """`(prompt_ids, prompt_mask, new_ids, tokens_per_forward)` for left-padded `prompts` (an autoregressive model
    writes one token per forward)."""
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    room = model.config.max_position_embeddings - batch["input_ids"].shape[1]  # what the model's positions allow
    if is_llada:
        kwargs = {k: v for k, v in settings.items() if v is not None}
        block = kwargs.get("block_length")
        if block and max_new_tokens % block:
            max_new_tokens += block - max_new_tokens % block
        if max_new_tokens > room:
            max_new_tokens = room - room % block if block and room >= block else room
            kwargs["block_length"] = block if block and max_new_tokens % block == 0 else None
        if kwargs.get("steps") is not None:
            kwargs["steps"] = max(kwargs["steps"], max_new_tokens // kwargs.get("block_length", max_new_tokens))
        else:
            kwargs["steps"] = max_new_tokens
        out = model.diffusion_generate(
            **batch, max_new_tokens=max_new_tokens, seed=seed, return_dict_in_generate=True, **kwargs
        )
        new, tokens_per_forward = out.sequences[:, batch["input_ids"].shape[1] :], out.tokens_per_forward
    else:
        max_new_tokens = min(max_new_tokens, room)
        torch.manual_seed(seed)
        temperature = settings.get("temperature") or 0.0
        sequences = model.generate(
            **batch,
            do_sample=temperature > 0,
            temperature=temperature or None,
            top_k=settings.get("top_k") or None,
            top_p=settings.get("top_p"),
            max_new_tokens=max_new_tokens,
            min_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
        )
        new, tokens_per_forward = sequences[:, batch["input_ids"].shape[1] :], 1.0
    return batch["input_ids"], batch["attention_mask"], new, tokens_per_forward


def generative_ppl(ar_model, prompt_ids, prompt_mask, new_ids) -> float:
    from llada.evaluation import generative_perplexity

    sequences = torch.cat([prompt_ids, new_ids], dim=1)
    mask = torch.cat([prompt_mask, torch.ones_like(new_ids)], dim=1)
    return generative_perplexity(ar_model, sequences, attention_mask=mask, prompt_length=prompt_ids.shape[1])


def evaluate_model(model_dir, options, training=None, heldout=None, ar=None) -> dict:
    """Samples from `model_dir` and their figures (a dict). `training` is the `TrainingText` they are judged against
    and `heldout` the text the prompts come from; both default to the bundled corpus's."""
    if training is None or heldout is None:
        train_text, heldout = corpus_splits()
        training = TrainingText(train_text)
    model, tokenizer, is_llada = load_model(model_dir)
    settings = (
        sampler_settings(model, options)
        if is_llada
        else {
            "temperature": options.temperature if options.temperature is not None else 0.8,
            "top_k": options.top_k,
            "top_p": options.top_p,
        }
    )
    pairs = prompts_from(heldout, options.num_samples, options.prompt_bytes, options.new_bytes)
    max_new_tokens = new_tokens_for(tokenizer, heldout, options.new_bytes)
    start = time.perf_counter()
    texts, gen_ppls, tpfs = [], [], []
    first_seed = getattr(options, "seed", 0)
    for seed in range(first_seed, first_seed + options.seeds):
        prompt_ids, prompt_mask, new_ids, tpf = generate(
            model, tokenizer, is_llada, [p for p, _ in pairs], max_new_tokens, settings, seed
        )
        tpfs.append(tpf)
        texts += tokenizer.batch_decode(new_ids, skip_special_tokens=True)
        if ar is not None:
            gen_ppls.append(generative_ppl(ar[0], prompt_ids, prompt_mask, new_ids))
    seconds = time.perf_counter() - start
    result = {
        "model": str(model_dir),
        "kind": "llada" if is_llada else "autoregressive",
        "settings": settings,
        "num_samples": len(texts),
        "new_tokens": max_new_tokens,
        **training.figures(texts),
        "generative_perplexity": sum(gen_ppls) / len(gen_ppls) if gen_ppls else None,
        "sampling_seconds": seconds,
        "tokens_per_forward": sum(tpfs) / len(tpfs),
        "samples": texts,
        "prompts": [p for p, _ in pairs],
    }
    return result


def reference_figures(heldout, training, options, ar=None) -> dict:
    """The same figures for the held-out text that follows the prompts (judged against `training` too)."""
    pairs = prompts_from(heldout, options.num_samples, options.prompt_bytes, options.new_bytes)
    texts = [c for _, c in pairs]
    gen_ppl = None
    if ar is not None:
        model, tokenizer = ar
        prompt = tokenizer([p for p, _ in pairs], return_tensors="pt", padding=True, add_special_tokens=False)
        cont = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in texts]
        width = min(len(c) for c in cont)
        new_ids = torch.tensor([c[:width] for c in cont])
        gen_ppl = generative_ppl(model, prompt["input_ids"], prompt["attention_mask"], new_ids)
    return {**training.figures(texts), "generative_perplexity": gen_ppl}


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", nargs="+", help="Trained model folder(s) (LLaDA or autoregressive).")
    parser.add_argument(
        "--ar_dir", default=None, help="Autoregressive model with the same tokenizer for the generative perplexity."
    )
    parser.add_argument("--num_samples", type=int, default=32)
    parser.add_argument(
        "--seeds", type=int, default=1, help="Each prompt is sampled once per seed --seed .. --seed + seeds - 1."
    )
    parser.add_argument("--prompt_bytes", type=int, default=32)
    parser.add_argument("--new_bytes", type=int, default=96)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--block_length", type=int, default=None)
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--remasking", default=None)
    parser.add_argument("--top_k", type=int, default=None)
    parser.add_argument("--top_p", type=float, default=None)
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--factor", type=float, default=None)
    parser.add_argument("--entropy_bound", type=float, default=None)
    parser.add_argument(
        "--train_file",
        nargs="+",
        default=None,
        help="The corpus the model was trained on (default: the bundled TinyShakespeare).",
    )
    parser.add_argument("--validation_file", nargs="+", default=None)
    parser.add_argument("--show", type=int, default=3, help="Samples to print per model.")
    common.add_common_args(parser)
    return parser.parse_args(argv)


def ratio(value, reference):
    """`value / reference`, or None when either is missing (no sample word, no reference)."""
    if value is None or not reference or math.isnan(value) or math.isnan(reference):
        return None
    return value / reference


def main(argv=None) -> int:
    options = parse(argv)
    harness = common.setup(options)
    from llada.training.data import DataArguments

    train_text, heldout = corpus_splits(
        DataArguments(train_file=options.train_file, validation_file=options.validation_file)
    )
    training = TrainingText(train_text)
    ar = None
    if options.ar_dir:
        ar_model, ar_tokenizer, _ = load_model(options.ar_dir)
        ar = (ar_model, ar_tokenizer)
    results = [evaluate_model(d, options, training, heldout, ar) for d in options.model_dir]
    reference = reference_figures(heldout, training, options, ar)
    for r in results:
        r["ratio_to_text"] = {key: ratio(r[key], reference[key]) for key in ("bigram_hit_rate", "trigram_perplexity")}
        r["bigram_ratio"], r["trigram_ratio"] = (
            r["ratio_to_text"]["bigram_hit_rate"],
            r["ratio_to_text"]["trigram_perplexity"],
        )
    heading = (
        f"{len(results[0]['samples'])} samples of ~{options.new_bytes} bytes after {options.prompt_bytes}-byte "
        f"prompts from the held-out text; {harness}"
    )
    rows = [*results, {"model": "held-out text", **reference}]
    columns = {
        "model": "model",
        "word_validity": "word validity",
        "distinct_2": "distinct-2",
        "bigram_hit_rate": "bigram hits",
        "bigram_ratio": "/ text",
        "trigram_perplexity": "3-gram PPL",
        "trigram_ratio": "/ text",
        "generative_perplexity": "gen. PPL",
        "sampling_seconds": "sampling s",
        "tokens_per_forward": "tokens/fwd",
    }
    formats = {
        "bigram_ratio": ".2f",
        "trigram_perplexity": ".1f",
        "trigram_ratio": ".2f",
        "generative_perplexity": ".2f",
        "sampling_seconds": ".1f",
        "tokens_per_forward": ".2f",
    }
    print(heading)
    print("\n".join(common.markdown_table(rows, columns, formats)))
    for r in results:
        print(f"\n{r['model']} ({r['kind']}; {json.dumps({k: v for k, v in r['settings'].items() if v is not None})})")
        for prompt, text in list(zip(r["prompts"], r["samples"]))[: options.show]:
            print(f"  {prompt!r} -> {text!r}")
    written = common.write_report(
        options.output,
        rows,
        title="Sample quality",
        intro=heading,
        columns=columns,
        formats=formats,
        meta=vars(options),
    )
    if written:
        print(f"wrote {written} and its .json (every sample)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
