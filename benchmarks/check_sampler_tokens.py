"""Records what the package computes on fixed inputs, to check that a change of code moves nothing.

A tiny seeded random model (full attention, block diffusion with block sizes 2 and 4, Dream's logit shift) and a
fixed left-padded prompt batch go through `diffusion_generate` over a sweep of settings (every remasking strategy,
temperature 0 and 0.8, top-k / top-p, blocks, parallel decoding, caches, guidance, infilling, early stop, ...);
the collators' batches and the training loss, and the evaluation values (ELBO, perplexity bounds, in-order and
Monte Carlo likelihoods) are recorded too. Errors are recorded as their messages.

    python benchmarks/check_sampler_tokens.py record before.pt     # on one version of the code
    python benchmarks/check_sampler_tokens.py record after.pt      # on the other
    python benchmarks/check_sampler_tokens.py compare before.pt after.pt

`compare` prints the number of records compared and every one that differs (tensors must be exactly equal).
Run with `OMP_NUM_THREADS=1` on both sides.
"""

import sys
from pathlib import Path

import torch

from llada import LLaDAConfig, LLaDAForMaskedDiffusion

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import helpers  # noqa: E402  (tests/helpers.py: its tiny config)

TINY = {**helpers.TINY, "initializer_range": 0.2}  # the tests' tiny model, with logits that differ clearly
MASK, PAD, EOS = 99, 0, 1
PROMPTS = torch.tensor([[11, 12, 13, 14, 15], [PAD, PAD, 21, 22, 23], [PAD, PAD, PAD, PAD, 31]])


def model(seed=0, **overrides):
    torch.manual_seed(seed)
    return LLaDAForMaskedDiffusion(LLaDAConfig(**{**TINY, **overrides})).eval()


def attempt(function):
    try:
        return function()
    except Exception as error:  # the message is the record: it must not change either
        return f"{type(error).__name__}: {error}"


def as_record(output):
    if torch.is_tensor(output) or isinstance(output, str):
        return output
    return {
        "sequences": output.sequences,
        "nfe": output.nfe,
        "decode_step": output.decode_step,
        "tokens_per_forward": output.tokens_per_forward,
        "history": None if output.history is None else torch.stack(output.history),
    }


def generation_settings():
    base = dict(max_new_tokens=16, steps=16)
    settings = []
    for remasking in ("low_confidence", "random", "entropy", "margin", "left_to_right"):
        for temperature in (0.0, 0.8):
            settings.append(dict(base, remasking=remasking, temperature=temperature, seed=7))
            settings.append(
                dict(base, remasking=remasking, temperature=temperature, block_length=4, steps=8, generator=3)
            )
    settings += [
        dict(base, temperature=0.8, top_p=0.9, seed=1),
        dict(base, temperature=0.8, top_p=0.5, remasking="margin", seed=1),
        dict(base, temperature=0.8, top_k=5, seed=2),
        dict(base, temperature=0.8, top_k=5, top_p=0.8, seed=2, block_length=8),
        dict(base, temperature=0.8, token_sampling="inverse_cdf", seed=4),
        dict(base, temperature=0.8, token_sampling="inverse_cdf", top_p=0.7, seed=4),
        dict(base, temperature=float("inf"), seed=5),
        dict(base, block_length=4, steps=4, threshold=0.05),
        dict(base, block_length=8, threshold=0.1, temperature=0.8, seed=6),
        dict(base, block_length=8, factor=1.0),
        dict(base, block_length=8, entropy_bound=0.5),
        dict(base, block_length=8, threshold=0.05, credit_decay=0.5),
        dict(base, remask_ratio=0.5, steps=6),
        dict(base, remask_ratio=0.3, steps=6, remasking="random", seed=8),
        dict(base, cfg_scale=1.0),
        dict(base, cfg_scale=0.5, temperature=0.8, seed=9, block_length=8),
        dict(base, min_new_tokens=6, block_length=4, steps=8),
        dict(base, early_stop=True, temperature=0.8, seed=10),
        dict(base, num_return_sequences=2, temperature=0.8, seed=11),
        dict(base, num_return_sequences=2, temperature=0.8, seed=[1, 2, 3]),
        dict(base, repetition_penalty=1.5, temperature=0.8, seed=12),
        dict(base, do_sample=True, seed=13),
        dict(base, output_history=True, return_dict_in_generate=True, block_length=8),
        dict(base, return_dict_in_generate=True, threshold=0.1, block_length=4, steps=16),
        dict(max_length=20, steps=8),
        dict(gen_length=8, steps=4, eos_token_id=[1, 2], pad_token_id=3),
        dict(base, use_cache="prefix", block_length=4),
        dict(base, use_cache="dual", block_length=4),
        dict(base, use_cache="dual", block_length=4, cache_refresh_interval=2, temperature=0.8, seed=14),
        dict(base, use_cache="dual", block_length=4, cache_window="masked", threshold=0.1),
        dict(base, use_cache="dual", block_length=4, cache_refresh_window="vicinity"),
        dict(base, use_cache="prefix", block_length=4, cfg_scale=1.0, early_stop=True),
        dict(base, use_cache="prefix", block_length=8, compile=True),
        dict(base, block_length=5),  # errors are records too
        dict(base, steps=1, block_length=4),
    ]
    return settings


def call_options(setting):
    setting = dict(setting)
    if isinstance(setting.get("generator"), int):
        setting["generator"] = torch.Generator().manual_seed(setting["generator"])
    return setting


def record_generation(records):
    models = {
        "full": model(0),
        "block2": model(1, block_size=2),
        "block4": model(2, block_size=4),
        "shift": model(3, logit_shift=True),
        "shift_block4": model(4, logit_shift=True, block_size=4),
    }
    prompts, mask = PROMPTS, (PROMPTS != PAD).long()
    for index, setting in enumerate(generation_settings()):
        if setting.get("compile"):
            continue  # compiling is slow; its tokens are tested to be the eager ones
        out = attempt(lambda: models["full"].diffusion_generate(prompts, mask, **call_options(setting)))
        records[f"full/{index}/{setting}"] = as_record(out)
    block_settings = [
        dict(max_new_tokens=8),
        dict(max_new_tokens=8, temperature=0.8, seed=1),
        dict(max_new_tokens=8, use_cache=False),
        dict(max_new_tokens=8, cfg_scale=1.0),
        dict(max_new_tokens=8, threshold=0.1, temperature=0.8, seed=2),
        dict(max_new_tokens=8, remasking="random", seed=3),
        dict(max_new_tokens=8, early_stop=True),
        dict(max_new_tokens=8, block_length=2, steps=4),
        dict(max_new_tokens=8, return_dict_in_generate=True),
        dict(max_new_tokens=8, use_cache="dual"),
    ]
    for name in ("block2", "block4", "shift", "shift_block4"):
        for index, setting in enumerate(block_settings):
            out = attempt(lambda: models[name].diffusion_generate(prompts, mask, **call_options(setting)))
            records[f"{name}/{index}/{setting}"] = as_record(out)
    for name in ("shift",):
        for cache in ("prefix", "dual"):
            out = attempt(
                lambda: models[name].diffusion_generate(
                    prompts, mask, max_new_tokens=16, steps=16, block_length=4, use_cache=cache
                )
            )
            records[f"{name}/cache/{cache}"] = as_record(out)
    # infilling: mask tokens in the prompt, then `infill`
    holes = torch.tensor([[11, MASK, MASK, 14, 15], [PAD, 21, MASK, 23, MASK], [PAD, PAD, 31, MASK, 33]])
    for setting in (
        dict(max_new_tokens=0),
        dict(max_new_tokens=4, steps=4),
        dict(max_new_tokens=0, temperature=0.8, seed=3),
        dict(max_new_tokens=4, block_length=2, steps=4),
    ):
        out = attempt(lambda: models["full"].diffusion_generate(holes, (holes != PAD).long(), **setting))
        records[f"full/infill-prompt/{setting}"] = as_record(out)
    records["full/infill"] = attempt(lambda: models["full"].infill([[5, 6], [7]], [[8], []], 4, steps=4))
    records["full/infill-sampled"] = attempt(
        lambda: models["full"].infill([5, 6, 7], [8, 9], 3, temperature=0.8, seed=2)
    )
    records["block4/infill-error"] = attempt(lambda: models["block4"].diffusion_generate(holes, max_new_tokens=4))
    records["full/unconditional"] = attempt(
        lambda: models["full"].diffusion_generate(
            None, max_new_tokens=8, num_return_sequences=2, temperature=0.8, seed=3
        )
    )
    records["full/no-mask-id"] = attempt(
        lambda: model(0, mask_token_id=None).diffusion_generate(prompts, max_new_tokens=4)
    )
    records["full/right-padded"] = attempt(
        lambda: models["full"].diffusion_generate(
            torch.tensor([[11, 12, PAD]]), torch.tensor([[1, 1, 0]]), max_new_tokens=4
        )
    )


def record_training(records):
    from llada.training.block_collator import DataCollatorForBlockDiffusion
    from llada.training.collator import DataCollatorForMaskedDiffusion

    generator = torch.Generator().manual_seed(0)
    lengths = (12, 9, 12, 5)
    plain = [{"input_ids": torch.randint(2, 99, (n,), generator=generator).tolist()} for n in lengths]
    sft = [{"input_ids": row["input_ids"], "labels": [-100] * 3 + row["input_ids"][3:]} for row in plain]
    full_options = [
        dict(),
        dict(masking="exact"),
        dict(t_sampling="stratified"),
        dict(complementary_masking=True),
        dict(masking="exact", complementary_masking=True),
        dict(random_length_probability=1.0),
        dict(pad_to_multiple_of=8),
        dict(eps=0.1),
    ]
    block_options = [
        dict(),
        dict(masking="bernoulli"),
        dict(t_sampling="stratified"),
        dict(complementary_masking=True),
        dict(complementary_masking=True, shared_clean_copy=False),
        dict(in_order_probability=0.5),
        dict(in_order_probability=1.0, complementary_masking=True),
        dict(masking="bernoulli", complementary_masking=True),
    ]
    full, blocks = model(0), {2: model(1, block_size=2), 4: model(2, block_size=4)}
    cases = [("full", DataCollatorForMaskedDiffusion, options, full) for options in full_options]
    cases += [
        (f"block{size}", DataCollatorForBlockDiffusion, dict(options, block_size=size), blocks[size])
        for size in (2, 4)
        for options in block_options
    ]
    for name, collator_class, options, the_model in cases:
        for data_name, data in (("plain", plain), ("sft", sft)):
            for seed in (3, None):
                torch.manual_seed(5)  # the global generator when the collator has no seed
                collator = collator_class(mask_token_id=MASK, pad_token_id=PAD, seed=seed, **options)
                batch = attempt(lambda: collator(data))
                key = f"train/{name}/{data_name}/{seed}/{options}"
                if isinstance(batch, str):
                    records[key] = batch
                    continue
                the_model.train()
                loss = the_model(**batch).loss
                the_model.eval()
                with torch.no_grad():
                    eval_loss = the_model(**batch).loss
                records[key] = {**batch, "loss": loss.detach(), "eval_loss": eval_loss}
    unmasked = DataCollatorForMaskedDiffusion(mask_token_id=MASK, pad_token_id=PAD, mask=False)
    records["train/unmasked/sft"] = unmasked(sft)
    records["train/no-mask-id"] = attempt(lambda: DataCollatorForMaskedDiffusion(pad_token_id=PAD))


def record_evaluation(records):
    from llada.evaluation import elbo_nll, in_order_nll, in_order_perplexity, masked_token_nll, perplexity_bound
    from llada.likelihood import answer_nll_samples, is_greedy_answer, score_multiple_choice

    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(2, 99, (4, 12), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    mask[3, 9:] = 0
    scored = mask.clone()
    scored[:, :2] = 0
    models = {
        "full": model(0),
        "block2": model(1, block_size=2),
        "block4": model(2, block_size=4),
        "shift_block4": model(4, logit_shift=True, block_size=4),
    }
    for name, the_model in models.items():
        for scheme in ("stratified", "antithetic", "uniform"):
            records[f"eval/{name}/elbo/{scheme}"] = attempt(
                lambda: elbo_nll(the_model, ids, mask, num_samples=4, t_sampling=scheme, seed=2)
            )
        records[f"eval/{name}/elbo/scored"] = attempt(
            lambda: elbo_nll(the_model, ids, mask, scored, num_samples=3, seed=1, eps=0.01)
        )
        records[f"eval/{name}/bound"] = attempt(
            lambda: perplexity_bound(the_model, ids, mask, batch_size=3, num_samples=4, show_progress=False)
        )
        records[f"eval/{name}/bound/nomask"] = attempt(
            lambda: perplexity_bound(the_model, ids, batch_size=2, num_samples=2, seed=3, show_progress=False)
        )
        records[f"eval/{name}/in_order"] = attempt(lambda: in_order_nll(the_model, ids, mask, scored))
        records[f"eval/{name}/in_order_ppl"] = attempt(
            lambda: in_order_perplexity(the_model, ids, mask, batch_size=3, show_progress=False)
        )
        masked = torch.rand(ids.shape, generator=generator) < 0.5
        noisy = ids.masked_fill(masked, MASK)
        records[f"eval/{name}/token_nll"] = attempt(lambda: masked_token_nll(the_model, noisy, ids, masked, mask))
        records[f"eval/{name}/token_nll_cfg"] = attempt(
            lambda: masked_token_nll(
                the_model, noisy, ids, masked, mask, cfg_scale=1.0, prompt_mask=~masked & (torch.arange(12) < 4)
            )
        )
        prompt, answers = [5, 6, 7], [[8, 9], [10, 11, 12], [8, 13]]
        records[f"eval/{name}/answer_nll"] = attempt(
            lambda: answer_nll_samples(the_model, prompt, answers[1], num_samples=6, batch_size=4)
        )
        records[f"eval/{name}/answer_nll_cfg"] = attempt(
            lambda: answer_nll_samples(
                the_model, prompt, answers[1], num_samples=5, cfg_scale=1.0, k_sampling="uniform", seed=3
            )
        )
        records[f"eval/{name}/choice"] = attempt(
            lambda: score_multiple_choice(the_model, prompt, answers, num_samples=4, length_normalize=True)
        )
        records[f"eval/{name}/greedy"] = attempt(lambda: is_greedy_answer(the_model, prompt, answers[0]))
    no_id = model(0, mask_token_id=None)
    records["eval/no-mask-id"] = attempt(lambda: elbo_nll(no_id, ids, num_samples=2))
    records["eval/no-mask-id/answer"] = attempt(lambda: answer_nll_samples(no_id, [5], [6], num_samples=2))


def record(path):
    records = {}
    record_generation(records)
    record_training(records)
    record_evaluation(records)
    torch.save(records, path)
    print(f"{len(records)} records -> {path}")


def same(a, b) -> bool:
    if torch.is_tensor(a) or torch.is_tensor(b):
        return (
            torch.is_tensor(a)
            and torch.is_tensor(b)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and bool(
                torch.equal(a, b)
                or (
                    a.is_floating_point()
                    and torch.equal(a.isnan(), b.isnan())
                    and torch.equal(a[~a.isnan()], b[~b.isnan()])
                )
            )
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b or (a != a and b != b)


def compare(before_path, after_path):
    before, after = torch.load(before_path, weights_only=False), torch.load(after_path, weights_only=False)
    differ = [key for key in before if key not in after or not same(before[key], after[key])]
    differ += [key for key in after if key not in before]
    groups = {}
    for key in before:
        groups[key.split("/")[0]] = groups.get(key.split("/")[0], 0) + 1
    errors = sum(isinstance(value, str) for value in before.values())
    print(f"{len(before)} records compared ({groups}; {errors} of them error messages): {len(differ)} differ")
    for key in differ:
        print("  differs:", key)
    return not differ


if __name__ == "__main__":
    if sys.argv[1] == "record":
        record(sys.argv[2])
    else:
        sys.exit(0 if compare(sys.argv[2], sys.argv[3]) else 1)
