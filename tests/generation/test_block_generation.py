"""Sampling from a block diffusion model: block by block against an exact cache of the finished blocks, checked
against an independent reference and against the uncached path, with every option of the sampler."""

import pytest
import torch

from helpers import EOS, MASK, PAD, make_model, prompts_batch, tiny_model
from llada.cache_llada import BlockKVCache
from llada.generation_config_llada import LLaDAGenerationConfig
from llada.prepare_llada import block_position_ids
from llada.sampling_llada import guidance_inputs


def block_model(seed=0, block_size=4):
    return tiny_model(seed, block_size=block_size, initializer_range=0.2)


def generate(model, ids, attention_mask=None, **settings):
    settings = {"max_new_tokens": 12, "eos_token_id": None, "return_dict_in_generate": True, **settings}
    return model.diffusion_generate(ids, attention_mask=attention_mask, **settings)


@torch.no_grad()
def reference_block_sampler(model, prompt, max_new_tokens, steps_per_block):
    """Greedy low-confidence block diffusion for one unpadded row, written from the definition: block after block,
    the model sees the prompt, the finished blocks and the current block (nothing after it); blocks start at the
    end of the prompt, so the positions are shifted to put the prompt's end on a block boundary."""
    block_size = model.config.block_size
    shift = (-prompt.numel()) % block_size
    canvas = prompt.tolist()
    for _ in range(max_new_tokens // block_size):
        canvas += [MASK] * block_size
        for step in range(steps_per_block):
            ids = torch.tensor([canvas])
            positions = torch.arange(len(canvas))[None] + shift
            logits = model(ids, position_ids=positions).logits[0, -block_size:].clone()  # (block, vocab)
            logits[:, MASK] = float("-inf")
            probs = logits.softmax(-1)
            confidence, x0 = probs.max(-1)
            block = canvas[-block_size:]
            masked = [i for i, token in enumerate(block) if token == MASK]
            steps_left = steps_per_block - step
            count = -(-len(masked) // steps_left)  # ceil(m / s): LLaDA's schedule
            for i in sorted(masked, key=lambda i: (-float(confidence[i]), i))[:count]:
                block[i] = int(x0[i])
            canvas[-block_size:] = block
    return torch.tensor(canvas)


# ----------------------------------------------------------------------------------------------------------------
# exactness


@pytest.mark.parametrize("prompt_length", [5, 8, 1])
@pytest.mark.parametrize("steps", [12, 6])
def test_cached_block_sampling_matches_the_reference(prompt_length, steps):
    model = block_model()
    prompt = torch.arange(11, 11 + prompt_length)
    out = generate(model, prompt[None], steps=steps)
    expected = reference_block_sampler(model, prompt, 12, steps // 3)
    assert torch.equal(out.sequences[0], expected)
    assert out.nfe == steps


@torch.no_grad()
def test_left_to_right_decodes_each_block_in_order():
    """Greedy left-to-right decoding, one token per step, from the definition: position i is the argmax of the
    model given the prompt, the tokens before i, and the rest of its block masked (nothing after the block)."""
    model, prompt = block_model(3), torch.arange(11, 19)  # 8 prompt tokens: blocks start on the prompt's end
    out = generate(model, prompt[None], remasking="left_to_right")
    canvas = prompt.tolist()
    for _ in range(3):  # three blocks of four
        for i in range(4):
            ids = torch.tensor([canvas + [MASK] * (4 - i)])
            logits = model(ids).logits[0, len(canvas)].clone()
            logits[MASK] = float("-inf")
            canvas.append(int(logits.argmax()))
    assert torch.equal(out.sequences[0], torch.tensor(canvas))
    assert torch.equal(out.decode_step[0, 8:], torch.arange(12))  # one position per step, left to right


SETTINGS = [
    dict(),
    dict(temperature=0.8, seed=1),
    dict(remasking="random", temperature=1.0, seed=2),
    dict(remasking="entropy"),
    dict(remasking="left_to_right", temperature=0.9, seed=8),
    dict(remasking="margin", top_k=20, top_p=0.9, temperature=0.7, seed=3),
    dict(threshold=0.3),
    dict(factor=1.5),
    dict(remask_ratio=0.5),
    dict(cfg_scale=1.5),
    dict(cfg_scale=1.0, temperature=0.8, seed=4, threshold=0.3),
    dict(block_length=2),  # half blocks: each model block decoded in two parts
    dict(steps=6),
    dict(eos_token_id=EOS, early_stop=True, min_new_tokens=2),
    dict(num_return_sequences=2, temperature=0.9, seed=5),
    dict(repetition_penalty=1.5, bad_words_ids=[[20]], min_p=0.05, temperature=0.9, seed=6),  # logits processors
    dict(do_sample=True, seed=7),
]


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "default")
def test_cached_sampling_gives_exactly_the_uncached_tokens(settings):
    model, (ids, attention_mask) = block_model(1), prompts_batch()  # left-padded prompts of lengths 5, 3, 1
    cached = generate(model, ids, attention_mask, **settings)
    uncached = generate(model, ids, attention_mask, use_cache=False, **settings)
    assert torch.equal(cached.sequences, uncached.sequences)
    assert torch.equal(cached.decode_step, uncached.decode_step) and cached.nfe == uncached.nfe


@pytest.mark.parametrize("use_cache", ["prefix", "dual"])
def test_the_fast_dllm_cache_names_select_the_exact_block_cache(use_cache):
    model, (ids, attention_mask) = block_model(2), prompts_batch()
    assert torch.equal(
        generate(model, ids, attention_mask, use_cache=use_cache).sequences,
        generate(model, ids, attention_mask).sequences,
    )


def test_a_row_does_not_depend_on_its_batch_companions_or_padding():
    model, (ids, attention_mask) = block_model(3), prompts_batch()
    batched = generate(model, ids, attention_mask).sequences
    for row in range(3):
        alone = ids[row][attention_mask[row].bool()][None]
        single = generate(model, alone).sequences[0]
        assert torch.equal(single, batched[row][ids.shape[1] - alone.shape[1] :])


def test_only_the_current_block_runs_after_the_first_pass():
    model = block_model(4)
    lengths = []
    handle = model.model.embed_tokens.register_forward_hook(lambda module, args, out: lengths.append(args[0].shape))
    generate(model, torch.arange(11, 16)[None], max_new_tokens=12, steps=6)  # 3 blocks of 4, 2 steps each
    handle.remove()
    # first pass: prompt + block 1; then the block; a new block's first pass also runs the block just finished
    assert [shape[1] for shape in lengths] == [5 + 4, 4, 4 + 4, 4, 4 + 4, 4]


def test_block_kv_cache_windows():
    cache = BlockKVCache(block_size=4, generation_start=6)
    assert cache.plan_window(slice(6, 10), 0, 18) == (0, 10) and cache.get_seq_length() == 0
    assert cache.plan_window(slice(6, 10), 1, 18) == (6, 10) and cache.get_seq_length() == 6
    assert cache.plan_window(slice(10, 12), 0, 18) == (6, 14)  # a sampling block of 2 inside the model block
    assert cache.plan_window(slice(12, 14), 0, 18) == (10, 14)
    assert cache.plan_window(slice(14, 18), 0, 18) == (10, 18)
    key = torch.randn(2, 1, 8, 3)
    returned, _ = cache.update(key, key, layer_idx=0)
    assert torch.equal(returned[:, :, 10:], key) and returned.shape[2] == 18
    cache.keep_rows(torch.tensor([1]))
    assert cache.keys[0].shape[0] == 1 and torch.equal(cache.keys[0][0, :, 10:18], key[1])


def test_positions_put_every_prompt_end_on_a_block_boundary():
    ids, attention_mask = prompts_batch()  # prompt lengths 5, 3, 1, left-padded to 5
    mask = torch.cat([attention_mask, torch.ones(3, 8, dtype=torch.long)], dim=1)
    positions = block_position_ids(mask, prompt_length=5, block_size=4)
    assert torch.all(positions[:, 5] % 4 == 0)  # the first generated position starts a block in every row
    assert positions[0].tolist() == list(range(3, 16))
    assert positions[2, 4:].tolist() == list(range(3, 12))


def test_the_unconditional_copy_of_a_block_model_drops_the_prompt():
    ids, attention_mask = prompts_batch()
    prompt = attention_mask.bool()
    both_ids, both_mask, _ = guidance_inputs(ids, prompt, MASK, attention_mask, drop_prompt=True)
    assert torch.equal(both_ids, torch.cat([ids, ids]))
    assert torch.equal(both_mask[:3], attention_mask) and not bool(both_mask[3:].any())
    out = generate(block_model(5), ids, attention_mask, cfg_scale=2.0).sequences
    assert not bool((out == MASK).any())


# ----------------------------------------------------------------------------------------------------------------
# settings


def test_block_length_defaults_to_the_block_size_and_must_divide_it():
    model = block_model(6, block_size=4)
    assert generate(model, torch.arange(11, 15)[None]).nfe == 12  # one token per step, blocks of 4
    with pytest.raises(ValueError, match=r"`block_length` \(8\) must divide the model's `block_size` \(4\)"):
        generate(model, torch.arange(11, 15)[None], max_new_tokens=16, block_length=8)
    with pytest.raises(ValueError, match="multiple of `block_length`"):
        generate(model, torch.arange(11, 15)[None], max_new_tokens=10)


def test_infilling_and_compile_are_refused_for_a_block_model():
    model = block_model(6, block_size=4)
    prompt = torch.tensor([[11, 12, MASK, MASK, 13, 14]])
    with pytest.raises(ValueError, match="cannot fill mask tokens inside a prompt"):
        generate(model, prompt)
    with pytest.raises(ValueError, match="cannot fill mask tokens inside a prompt"):
        model.infill([[11, 12]], [[13, 14]], 4, eos_token_id=None)
    with pytest.raises(ValueError, match="`compile` is not supported for a block diffusion model"):
        generate(model, torch.arange(11, 15)[None], compile=True)


def test_use_cache_defaults_to_exact_caches_only():
    assert LLaDAGenerationConfig().use_cache is None
    model, (ids, attention_mask) = block_model(7), prompts_batch()
    calls = []

    def logits_hook(step, canvas, logits):  # hooks take the whole canvas: the block model then runs uncached
        calls.append(logits.shape)
        return logits

    hooked = generate(model, ids, attention_mask, generation_logits_hook_func=logits_hook)
    assert calls[0] == (3, 17, 100)
    assert torch.equal(hooked.sequences, generate(model, ids, attention_mask).sequences)
    with pytest.raises(ValueError, match="`use_cache` cannot be combined"):
        generate(model, ids, attention_mask, use_cache="dual", generation_logits_hook_func=logits_hook)


def test_full_attention_models_are_unchanged_by_the_default():
    model, (ids, attention_mask) = tiny_model(8, initializer_range=0.2), prompts_batch()
    assert torch.equal(
        generate(model, ids, attention_mask, block_length=4).sequences,
        generate(model, ids, attention_mask, block_length=4, use_cache=False).sequences,
    )


def test_generated_padding_and_eos_like_the_full_sampler():
    model = block_model(9)
    out = generate(
        model,
        torch.arange(11, 15)[None],
        eos_token_id=EOS,
        pad_token_id=PAD,
        generation_tokens_hook_func=lambda step, x, logits: (
            x if step is None or step != 0 else torch.where(torch.arange(x.shape[1]) == 5, torch.tensor(EOS), x)
        ),
    )
    generated = out.sequences[0, 4:].tolist()
    assert generated[1] == EOS and set(generated[2:]) == {PAD}


# ----------------------------------------------------------------------------------------------------------------
# a trained block model


def test_a_trained_block_model_continues_a_deterministic_pattern(tmp_path):
    from datasets import Dataset

    from helpers import arguments
    from llada.training.tokenizers import build_byte_tokenizer
    from llada.training.trainer import LLaDATrainer

    tokenizer = build_byte_tokenizer()
    text = b"to be or not to be. " * 300
    rows = Dataset.from_dict({"input_ids": [list(text[i : i + 32]) for i in range(0, 4000, 7)]})
    model = make_model(tokenizer, block_size=4)
    args = arguments(tmp_path, max_steps=200, learning_rate=1e-2, per_device_train_batch_size=16)
    LLaDATrainer(model=model, args=args, train_dataset=rows, processing_class=tokenizer).train()
    model.eval()
    prompt = torch.tensor([list(b"ot to be. to")])
    out = model.diffusion_generate(prompt, max_new_tokens=16, eos_token_id=None, return_dict_in_generate=True)
    assert bytes(out.sequences[0, 12:].tolist()) == b" be or not to be"
    parallel = model.diffusion_generate(
        prompt, max_new_tokens=16, eos_token_id=None, threshold=0.9, return_dict_in_generate=True
    )
    assert torch.equal(parallel.sequences, out.sequences) and parallel.nfe < out.nfe
