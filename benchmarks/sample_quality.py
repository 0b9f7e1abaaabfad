"""Sample quality of a trained model as a reader judges it: word validity, distinct-2, generative perplexity.

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
- *generative perplexity*: the perplexity an autoregressive model with the same tokenizer (`--ar_dir`) assigns to
  the generated tokens given the prompt.

The same figures for the held-out text itself are printed as a reference. One thread unless `--threads`; each
prompt is sampled with the seeds `--seed` .. `--seed + --seeds - 1`; `--output` writes the table (markdown) and every
figure and sample (its JSON).
"""

import argparse
import json
import math
import re
import sys
import time

import torch
import torch.nn.functional as F

from common import add_common_args, markdown_table, setup, write_report

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
    grams = [tuple(ws[i:i + n]) for ws in map(inner_words, samples) for i in range(len(ws) - n + 1)]
    return len(set(grams)) / len(grams) if grams else float("nan")


@torch.no_grad()
def sliding_perplexity(ar_model, prompts, generated, context: int) -> float:
    """exp(mean NLL) of the generated tokens under `ar_model`, each token seen with up to `context - 1` tokens
    before it (windows of `context` tokens, advancing by half of it)."""
    sequences = torch.cat([prompts, generated], dim=1).to(ar_model.device)  # (batch, seq)
    first_scored, seq = prompts.shape[1], sequences.shape[1]
    total_nll, count, stride = 0.0, 0, max(context // 2, 1)
    scored_until = first_scored  # tokens before this index are scored already (or are the prompt)
    end = min(seq, context)
    while scored_until < seq:
        start = max(0, end - context)
        window = sequences[:, start:end]
        logits = ar_model(input_ids=window).logits[:, :-1].float()  # (batch, w - 1, vocab)
        nll = F.cross_entropy(logits.transpose(1, 2), window[:, 1:], reduction="none")  # (batch, w - 1)
        new = nll[:, scored_until - start - 1:]  # targets at positions scored_until .. end - 1
        total_nll += new.double().sum().item()
        count += new.numel()
        scored_until, end = end, min(seq, end + stride)
    return math.exp(total_nll / count)


# ----------------------------------------------------------------------------------------------------------------
# data and models


def corpus_splits(data_args=None):
    """(training text, held-out text) of the corpus `llada-train` reads with `data_args` (default: the bundled
    TinyShakespeare, 5 % held out at its tail)."""
    from llada.training.data import DataArguments, load_raw_datasets

    raw = load_raw_datasets(data_args if data_args is not None else DataArguments())
    column = (data_args.text_column if data_args is not None else "text")
    return "\n".join(raw["train"][column]), "\n".join(raw["validation"][column])


def prompts_from(text: str, count: int, prompt_bytes: int, new_bytes: int) -> list:
    """`count` prompts of `prompt_bytes` characters starting at line starts spread evenly over `text`, each with the
    `new_bytes` characters that follow it (the reference continuation)."""
    span = prompt_bytes + new_bytes
    starts, limit = [], len(text) - span
    for k in range(count):
        start = text.find("\n", int(k * limit / count)) + 1
        starts.append(min(start, limit))
    return [(text[s:s + prompt_bytes], text[s + prompt_bytes:s + span]) for s in starts]


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
    settings = {name: getattr(config, name, None) for name in
                ("steps", "block_length", "temperature", "remasking", "top_k", "top_p", "threshold", "factor",
                 "entropy_bound")}
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
        out = model.diffusion_generate(**batch, max_new_tokens=max_new_tokens, seed=seed,
                                       return_dict_in_generate=True, **kwargs)
        new, tokens_per_forward = out.sequences[:, batch["input_ids"].shape[1]:], out.tokens_per_forward
    else:
        max_new_tokens = min(max_new_tokens, room)
        torch.manual_seed(seed)
        temperature = settings.get("temperature") or 0.0
        sequences = model.generate(**batch, do_sample=temperature > 0, temperature=temperature or None,
                                   top_k=settings.get("top_k") or None, top_p=settings.get("top_p"),
                                   max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens,
                                   pad_token_id=tokenizer.pad_token_id)
        new, tokens_per_forward = sequences[:, batch["input_ids"].shape[1]:], 1.0
    return batch["input_ids"], batch["attention_mask"], new, tokens_per_forward


def generative_ppl(ar_model, prompt_ids, prompt_mask, new_ids) -> float:
    from llada.evaluation import generative_perplexity

    sequences = torch.cat([prompt_ids, new_ids], dim=1)
    mask = torch.cat([prompt_mask, torch.ones_like(new_ids)], dim=1)
    return generative_perplexity(ar_model, sequences, attention_mask=mask, prompt_length=prompt_ids.shape[1])


def evaluate_model(model_dir, options, vocabulary=None, heldout=None, ar=None) -> dict:
    """Samples from `model_dir` and their figures (a dict); loads the corpus and `--ar_dir` when not given."""
    if vocabulary is None or heldout is None:
        train_text, heldout = corpus_splits()
        vocabulary = set(words_of(train_text))
    model, tokenizer, is_llada = load_model(model_dir)
    settings = sampler_settings(model, options) if is_llada else {"temperature": options.temperature
                                                                  if options.temperature is not None else 0.8,
                                                                  "top_k": options.top_k, "top_p": options.top_p}
    pairs = prompts_from(heldout, options.num_samples, options.prompt_bytes, options.new_bytes)
    max_new_tokens = new_tokens_for(tokenizer, heldout, options.new_bytes)
    start = time.perf_counter()
    texts, gen_ppls, tpfs = [], [], []
    first_seed = getattr(options, "seed", 0)
    for seed in range(first_seed, first_seed + options.seeds):
        prompt_ids, prompt_mask, new_ids, tpf = generate(model, tokenizer, is_llada, [p for p, _ in pairs],
                                                         max_new_tokens, settings, seed)
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
        "word_validity": word_validity(texts, vocabulary),
        "distinct_2": distinct_n(texts, 2),
        "generative_perplexity": sum(gen_ppls) / len(gen_ppls) if gen_ppls else None,
        "sampling_seconds": seconds,
        "tokens_per_forward": sum(tpfs) / len(tpfs),
        "samples": texts,
        "prompts": [p for p, _ in pairs],
    }
    return result


def reference_figures(heldout, vocabulary, options, ar=None) -> dict:
    """The same figures for the held-out continuations themselves."""
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
    return {"word_validity": word_validity(texts, vocabulary), "distinct_2": distinct_n(texts, 2),
            "generative_perplexity": gen_ppl}


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", nargs="+", help="Trained model folder(s) (LLaDA or autoregressive).")
    parser.add_argument("--ar_dir", default=None,
                        help="Autoregressive model with the same tokenizer for the generative perplexity.")
    parser.add_argument("--num_samples", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=1,
                        help="Each prompt is sampled once per seed --seed .. --seed + seeds - 1.")
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
    parser.add_argument("--train_file", nargs="+", default=None,
                        help="The corpus the model was trained on (default: the bundled TinyShakespeare).")
    parser.add_argument("--validation_file", nargs="+", default=None)
    parser.add_argument("--show", type=int, default=3, help="Samples to print per model.")
    add_common_args(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    options = parse(argv)
    harness = setup(options)
    from llada.training.data import DataArguments

    train_text, heldout = corpus_splits(DataArguments(train_file=options.train_file,
                                                      validation_file=options.validation_file))
    vocabulary = set(words_of(train_text))
    ar = None
    if options.ar_dir:
        ar_model, ar_tokenizer, _ = load_model(options.ar_dir)
        ar = (ar_model, ar_tokenizer)
    results = [evaluate_model(d, options, vocabulary, heldout, ar) for d in options.model_dir]
    reference = reference_figures(heldout, vocabulary, options, ar)
    heading = (f"{len(results[0]['samples'])} samples of ~{options.new_bytes} bytes after {options.prompt_bytes}-byte "
               f"prompts from the held-out text; {harness}")
    rows = [*results, {"model": "held-out text", **reference}]
    columns = {"model": "model", "word_validity": "word validity", "distinct_2": "distinct-2",
               "generative_perplexity": "gen. PPL", "sampling_seconds": "sampling s",
               "tokens_per_forward": "tokens/fwd"}
    formats = {"generative_perplexity": ".2f", "sampling_seconds": ".1f", "tokens_per_forward": ".2f"}
    print(heading)
    print("\n".join(markdown_table(rows, columns, formats)))
    for r in results:
        print(f"\n{r['model']} ({r['kind']}; {json.dumps({k: v for k, v in r['settings'].items() if v is not None})})")
        for prompt, text in list(zip(r["prompts"], r["samples"]))[: options.show]:
            print(f"  {prompt!r} -> {text!r}")
    written = write_report(options.output, rows, title="Sample quality", intro=heading, columns=columns,
                           formats=formats, meta=vars(options))
    if written:
        print(f"wrote {written} and its .json (every sample)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
