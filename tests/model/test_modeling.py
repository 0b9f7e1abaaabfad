"""LLaDA model: shapes, bidirectionality, padding invariance, eager == SDPA, checkpointing, loss, variants."""

import pytest
import torch
import torch.nn.functional as F

from helpers import tiny_model
from llada import LLaDAForMaskedDiffusion, LLaDAModel, forward_process, masked_diffusion_loss


def random_ids(batch=2, seq=12, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(2, 99, (batch, seq), generator=generator)


def test_forward_shapes_and_outputs(model):
    ids = random_ids()
    out = model(ids, output_hidden_states=True, output_attentions=True)
    assert out.logits.shape == (2, 12, 100)
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    assert all(h.shape == (2, 12, 32) for h in out.hidden_states)
    assert len(out.attentions) == model.config.num_hidden_layers
    assert out.attentions[0].shape == (2, 4, 12, 12)
    assert torch.allclose(out.attentions[0].sum(-1), torch.ones(2, 4, 12), atol=1e-5)
    assert out.loss is None
    base = LLaDAModel(model.config)
    assert base(ids).last_hidden_state.shape == (2, 12, 32)


def test_tuple_output(model):
    ids = random_ids()
    labels = ids.clone()
    loss, logits = model(ids, labels=labels, return_dict=False)
    assert logits.shape == (2, 12, 100) and loss.dim() == 0


def test_bidirectional_a_later_token_changes_earlier_logits(model):
    ids = random_ids(batch=1)
    changed = ids.clone()
    changed[0, -1] = (ids[0, -1] + 1) % 98 + 2
    with torch.no_grad():
        before, after = model(ids).logits, model(changed).logits
    assert not torch.allclose(before[0, 0], after[0, 0])


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_padding_invariance(side, attn_implementation):
    model = tiny_model()
    model.config._attn_implementation = attn_implementation
    real = random_ids(batch=1, seq=7)
    pad = torch.zeros(1, 5, dtype=torch.long)
    padded = torch.cat([pad, real], 1) if side == "left" else torch.cat([real, pad], 1)
    mask = (torch.arange(12) >= 5) if side == "left" else (torch.arange(12) < 7)
    mask = mask.long()[None]
    with torch.no_grad():
        alone = model(real).logits[0]
        # batch the padded row with an unpadded one so the mask really is used per row
        batch = torch.cat([padded, random_ids(batch=1, seq=12, seed=3)])
        batch_mask = torch.cat([mask, torch.ones_like(mask)])
        logits = model(batch, attention_mask=batch_mask).logits[0]
    real_logits = logits[mask[0].bool()]
    torch.testing.assert_close(real_logits, alone, atol=1e-5, rtol=1e-5)


def test_eager_equals_sdpa_with_padding():
    model = tiny_model()
    ids = random_ids(batch=3, seq=10)
    mask = torch.ones_like(ids)
    mask[0, :4] = 0
    mask[2, 7:] = 0
    with torch.no_grad():
        model.set_attn_implementation("eager")
        from_eager = model(ids, attention_mask=mask).logits
        model.set_attn_implementation("sdpa")
        from_sdpa = model(ids, attention_mask=mask).logits
    torch.testing.assert_close(from_eager, from_sdpa, atol=1e-5, rtol=1e-5)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # transformers 5 renames the switch; both names work
def test_gradient_checkpointing_gives_same_gradients():
    ids, labels = random_ids(), random_ids(seed=5)

    def grads(checkpointing):
        model = tiny_model().train()
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            assert all(layer.gradient_checkpointing for layer in model.model.layers)
        model(ids, labels=labels, p_mask=torch.tensor([0.5, 0.25])).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}

    plain, checkpointed = grads(False), grads(True)
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        torch.testing.assert_close(plain[name], checkpointed[name], msg=name)


def test_training_step_runs_the_head_only_at_labelled_positions():
    ids = random_ids(batch=3, seq=10)
    noisy, masked, p_mask = forward_process(
        ids, torch.tensor([0.3, 0.6, 0.9]), 99, generator=torch.Generator().manual_seed(0)
    )
    labels = torch.where(masked, ids, -100)

    def loss_and_grads(training):
        model = tiny_model().train(training)
        out = model(noisy, labels=labels, p_mask=p_mask)
        out.loss.backward()
        return out, {name: p.grad.clone() for name, p in model.named_parameters()}

    (trained, train_grads), (full, full_grads) = loss_and_grads(True), loss_and_grads(False)
    assert trained.logits is None and full.logits.shape == (3, 10, 100)  # eval mode keeps every position
    torch.testing.assert_close(trained.loss, full.loss)
    for name in full_grads:
        torch.testing.assert_close(train_grads[name], full_grads[name], msg=name)
    labelled_logits = full.logits[labels != -100]
    torch.testing.assert_close(masked_diffusion_loss(labelled_logits, labels, p_mask), full.loss)


def hand_ce(logits, labels):
    """Cross-entropy of each position, written out: -log softmax at the label."""
    log_probs = logits.float().log_softmax(-1)
    return -log_probs.gather(-1, labels.clamp(min=0)[..., None])[..., 0]


def test_pretraining_loss_equals_hand_computation(model):
    ids = random_ids(batch=2, seq=6)
    labels = torch.full_like(ids, -100)
    labels[0, [1, 4]] = ids[0, [1, 4]]
    labels[1, [0]] = ids[1, [0]]
    attention_mask = torch.ones_like(ids)
    attention_mask[1, 4:] = 0
    p_mask = torch.tensor([0.4, 0.2])
    out = model(ids, attention_mask=attention_mask, labels=labels, p_mask=p_mask)
    ce = hand_ce(out.logits, labels)
    expected = (ce[0, 1] / 0.4 + ce[0, 4] / 0.4 + ce[1, 0] / 0.2) / 10  # 10 non-padding slots
    torch.testing.assert_close(out.loss, expected)
    # a per-token p_mask of the same values gives the same loss
    per_token = p_mask[:, None].expand(2, 6)
    torch.testing.assert_close(
        model(ids, attention_mask=attention_mask, labels=labels, p_mask=per_token).loss, expected
    )
    # without attention mask the normaliser is B * L
    no_mask = model(ids, labels=labels, p_mask=p_mask)
    ce = hand_ce(no_mask.logits, labels)
    torch.testing.assert_close(no_mask.loss, (ce[0, 1] / 0.4 + ce[0, 4] / 0.4 + ce[1, 0] / 0.2) / 12)


def test_sft_normalisation_and_plain_mean(model):
    ids = random_ids(batch=2, seq=6)
    labels = torch.full_like(ids, -100)
    labels[0, [3, 5]] = ids[0, [3, 5]]
    labels[1, [2]] = ids[1, [2]]
    logits = model(ids).logits
    ce = hand_ce(logits, labels)
    p_mask = torch.tensor([0.5, 0.25])
    answer_lengths = torch.tensor([3, 4])
    sft = masked_diffusion_loss(logits, labels, p_mask, answer_lengths=answer_lengths)
    expected = ((ce[0, 3] + ce[0, 5]) / 0.5 / 3 + ce[1, 2] / 0.25 / 4) / 2
    torch.testing.assert_close(sft, expected)
    plain = masked_diffusion_loss(logits, labels)
    torch.testing.assert_close(plain, (ce[0, 3] + ce[0, 5] + ce[1, 2]) / 3)
    torch.testing.assert_close(plain, F.cross_entropy(logits.view(-1, 100), labels.view(-1)))


def test_token_reweighting_is_a_focal_loss_in_training_only():
    ids = random_ids(batch=2, seq=6)
    labels = torch.full_like(ids, -100)
    labels[0, [1, 4]] = ids[0, [1, 4]]
    labels[1, [0]] = ids[1, [0]]
    p_mask = torch.tensor([0.4, 0.2])
    model = tiny_model(token_reweighting_gamma=2.0).eval()
    logits = model(ids).logits
    ce = hand_ce(logits, labels)
    focal = (1 - torch.exp(-ce)) ** 2 * ce
    expected = (focal[0, 1] / 0.4 + focal[0, 4] / 0.4 + focal[1, 0] / 0.2) / 12
    torch.testing.assert_close(masked_diffusion_loss(logits, labels, p_mask, token_reweighting_gamma=2.0), expected)
    torch.testing.assert_close(model.train()(ids, labels=labels, p_mask=p_mask).loss, expected)
    # an evaluation loss (a bound) stays LLaDA's
    plain = (ce[0, 1] / 0.4 + ce[0, 4] / 0.4 + ce[1, 0] / 0.2) / 12
    torch.testing.assert_close(model.eval()(ids, labels=labels, p_mask=p_mask).loss, plain)
    with pytest.raises(ValueError, match="token_reweighting_gamma"):
        tiny_model(token_reweighting_gamma=-1.0)


def test_forward_process_masks_with_probability_p_and_only_maskable_positions():
    ids = torch.arange(2, 4002).view(2, 2000)
    maskable = torch.ones_like(ids, dtype=torch.bool)
    maskable[:, :10] = False
    t = torch.tensor([0.25, 1.0])
    noisy, masked, p_mask = forward_process(ids, t, 99, maskable, eps=0.1, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(p_mask, torch.tensor([[0.325], [1.0]]))  # (1 - eps) t + eps
    assert not masked[:, :10].any() and masked[1, 10:].all()
    assert abs(masked[0].float().mean().item() - 0.325) < 0.03
    assert torch.equal(noisy, ids.masked_fill(masked, 99))
    again = forward_process(ids, t, 99, maskable, eps=0.1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again[1], masked)  # the generator fixes the masks


def test_loss_with_nothing_labelled_is_zero_and_differentiable(model):
    ids = random_ids()
    labels = torch.full_like(ids, -100)
    loss = model(ids, labels=labels).loss
    assert loss.item() == 0.0
    loss.backward()


def test_loss_rejects_badly_shaped_p_mask(model):
    ids = random_ids()
    with pytest.raises(ValueError, match="p_mask"):
        model(ids, labels=ids, p_mask=torch.ones(3))


def test_bad_inputs_raise_clear_errors(model):
    with pytest.raises(ValueError, match="exactly one of `input_ids` or `inputs_embeds`"):
        model()
    with pytest.raises(ValueError, match="attention_mask"):
        model(random_ids(), attention_mask=torch.ones(2, 5))


@pytest.mark.parametrize(
    "overrides",
    [
        dict(num_key_value_heads=1),  # multi-query
        dict(num_key_value_heads=4),  # plain multi-head
        dict(hidden_act="mish"),
        dict(attention_type="latent", kv_latent_dim=8),
        dict(rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}),
        dict(attention_bias=True, mlp_bias=True),
    ],
)
def test_variants_run_and_round_trip(tmp_path, overrides):
    model = tiny_model(**overrides)
    ids = random_ids()
    with torch.no_grad():
        logits = model(ids).logits
    model.save_pretrained(tmp_path)
    reloaded = LLaDAForMaskedDiffusion.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, logits)
    for key, value in overrides.items():
        assert getattr(reloaded.config, key) == value


def test_latent_attention_module_names():
    attention = tiny_model(attention_type="latent", kv_latent_dim=8).model.layers[0].self_attn
    names = {name for name, _ in attention.named_children()}
    assert names == {"q_proj", "kv_down_proj", "k_up_proj", "v_up_proj", "o_proj"}
    assert attention.kv_down_proj.out_features == 8


def test_llama_module_names(model):
    names = {
        name.split(".")[-2] if name.endswith(("weight", "bias")) else name for name, _ in model.named_parameters()
    }
    for expected in [
        "embed_tokens",
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
        "input_layernorm",
        "post_attention_layernorm",
        "norm",
        "lm_head",
    ]:
        assert expected in names, expected


def test_tied_and_untied_heads(tmp_path):
    tied = tiny_model(tie_word_embeddings=True)
    assert tied.lm_head.weight.data_ptr() == tied.model.embed_tokens.weight.data_ptr()
    untied = tiny_model(tie_word_embeddings=False)
    assert untied.lm_head.weight.data_ptr() != untied.model.embed_tokens.weight.data_ptr()
    tied.save_pretrained(tmp_path)
    reloaded = LLaDAForMaskedDiffusion.from_pretrained(tmp_path)
    assert reloaded.lm_head.weight.data_ptr() == reloaded.model.embed_tokens.weight.data_ptr()
    torch.testing.assert_close(reloaded.lm_head.weight, tied.lm_head.weight)


def test_resize_token_embeddings(model):
    model.resize_token_embeddings(120)
    assert model.config.vocab_size == 120
    assert model.lm_head.weight.shape == (120, 32)
    assert model(random_ids()).logits.shape == (2, 12, 120)


def test_trainer_facing_attributes():
    assert LLaDAForMaskedDiffusion.accepts_loss_kwargs is False
    assert LLaDAForMaskedDiffusion._no_split_modules == ["LLaDADecoderLayer"]
    assert LLaDAForMaskedDiffusion._tied_weights_keys == {"lm_head.weight": "model.embed_tokens.weight"}
    assert "ForCausalLM" not in LLaDAForMaskedDiffusion.__name__


def test_position_ids_follow_real_tokens(model):
    ids = random_ids(batch=1, seq=6)
    explicit = model(ids, position_ids=torch.arange(6)[None]).logits
    torch.testing.assert_close(model(ids).logits, explicit)


def test_bf16_forward_runs():
    model = tiny_model().to(torch.bfloat16)
    out = model(random_ids(), labels=random_ids(seed=4), p_mask=torch.tensor([0.5, 0.5]))
    assert out.logits.dtype == torch.bfloat16 and torch.isfinite(out.loss)


class WindowCache:
    """Minimal cache of the `update(key, value, layer_idx)` protocol: records a full pass, then serves windows."""

    def __init__(self):
        self.keys, self.values, self.window = {}, {}, None

    def update(self, key, value, layer_idx):
        if self.window is None:
            self.keys[layer_idx], self.values[layer_idx] = key, value
            return key, value
        start, end = self.window
        keys, values = self.keys[layer_idx].clone(), self.values[layer_idx].clone()
        keys[:, :, start:end], values[:, :, start:end] = key, value
        return keys, values


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_windowed_forward_with_fresh_cache_equals_full_forward(attn_implementation):
    model = tiny_model()
    model.set_attn_implementation(attn_implementation)
    ids = random_ids(batch=2, seq=12)
    attention_mask = torch.ones_like(ids)
    attention_mask[0, :3] = 0  # left padding in the first row
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    cache = WindowCache()
    with torch.no_grad():
        full = model(ids, attention_mask=attention_mask, past_key_values=cache, position_ids=position_ids).logits
        torch.testing.assert_close(full, model(ids, attention_mask=attention_mask).logits)
        cache.window = (5, 9)
        window = model(
            ids[:, 5:9], attention_mask=attention_mask, past_key_values=cache, position_ids=position_ids[:, 5:9]
        ).logits
    assert window.shape == (2, 4, 100)
    torch.testing.assert_close(window, full[:, 5:9], atol=1e-5, rtol=1e-5)


def test_cache_requires_window_positions(model):
    with pytest.raises(ValueError, match="position_ids"):
        model(random_ids(), past_key_values=WindowCache())


@pytest.mark.parametrize("bad", [0.0, -0.5, float("nan"), 1.5, float("inf")])
def test_loss_rejects_p_mask_outside_zero_one(model, bad):
    ids = torch.randint(2, 90, (2, 6))
    labels = torch.where(torch.rand(2, 6) < 0.5, ids, -100)
    p_mask = torch.tensor([0.5, bad])
    with pytest.raises(ValueError, match=r"`p_mask` must hold masking probabilities in \(0, 1\]"):
        model(ids, labels=labels, p_mask=p_mask)
    with pytest.raises(ValueError, match="p_mask"):  # per-token p_mask too
        model(ids, labels=labels, p_mask=p_mask[:, None].expand(2, 6))
    assert torch.isfinite(model(ids, labels=labels, p_mask=torch.tensor([1.0, 1e-3])).loss)


def test_tensor_parallel_plan_shards_the_head_with_the_embedding():
    # Llama's plan: the head split by vocabulary rows and gathered; the embedding row-wise (planned by
    # transformers), so a tied head and its embedding share the same sharding.
    plan = tiny_model(tie_word_embeddings=True).tp_plan
    assert plan["lm_head"] == "colwise_gather_output"
    assert plan["model.embed_tokens"] == "embedding_rowwise"
    assert plan["model.layers.*.self_attn.q_proj"] == "colwise" and plan["model.layers.*.mlp.down_proj"] == "rowwise"


def test_forward_beyond_max_positions_is_refused():
    model = tiny_model(max_position_embeddings=9)
    assert model(torch.ones(1, 9, dtype=torch.long)).logits.shape == (1, 9, 100)
    with pytest.raises(
        ValueError,
        match=r"`input_ids` must be at most `max_position_embeddings` = 9 tokens long.*"
        r"got 10 tokens in a row",
    ):
        model(torch.ones(1, 10, dtype=torch.long))
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 9, dtype=torch.long)], dim=1)
    mask = (padded != 0).long()  # 12 columns, 9 real tokens: padding takes no position
    assert model(padded, attention_mask=mask).logits.shape == (1, 12, 100)


def test_logits_to_keep_picks_positions_shared_or_per_row():
    model = tiny_model()
    ids = torch.randint(2, 99, (2, 7))
    with torch.no_grad():
        full = model(ids).logits  # (2, 7, vocab)
        per_row = torch.tensor([[4, 1], [0, 6]])
        assert torch.equal(model(ids, logits_to_keep=per_row).logits, torch.stack([full[0, [4, 1]], full[1, [0, 6]]]))
        assert torch.equal(model(ids, logits_to_keep=torch.tensor([2, 5])).logits, full[:, [2, 5]])
        assert torch.equal(model(ids, logits_to_keep=slice(1, 3)).logits, full[:, 1:3])
        assert torch.equal(model(ids, logits_to_keep=2).logits, full[:, -2:])
