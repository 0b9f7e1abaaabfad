"""The model's own `forward` refuses a bad tensor with one clear `ValueError` naming the argument, the expected and
the given value; legitimate unusual inputs (4-D masks, boolean masks, windows, positions of a batch of 1) pass."""

import pytest
import torch

from helpers import GraphCounter, tiny_model
from llada.checks_llada import VALUE_CHECKS_VARIABLE, check_labels, checks_values

IDS = torch.tensor([[11, 12, 13, 14, 15, 16], [21, 22, 23, 24, 25, 26]])  # (2, 6)

# input -> the message's parts (the argument, what it must be, what it got); the tiny model: vocab 100, hidden 32
BAD_INPUTS = {
    "input_ids float32": (
        dict(input_ids=IDS.float()),
        r"`input_ids` must be token ids of dtype torch.long \(or torch.int\), got dtype "
        r"torch.float32",
    ),
    "input_ids 1-D": (
        dict(input_ids=IDS[0]),
        r"`input_ids` must be 2-D, of shape \(batch, seq\) \(one sequence: `input_ids\[None\]`\), got a "
        r"1-D tensor of shape \(6,\)",
    ),
    "input_ids 3-D": (dict(input_ids=IDS[None]), r"`input_ids` must be 2-D.*got a 3-D tensor of shape \(1, 2, 6\)"),
    "input_ids >= vocab_size": (
        dict(input_ids=torch.tensor([[5, 150]])),
        r"`input_ids` must be ids in \[0, 99\] \(the vocabulary\), got 150 at \(0, 1\)",
    ),
    "input_ids -1": (dict(input_ids=torch.tensor([[5, 6], [7, -1]])), r"got -1 at \(1, 1\)"),
    "attention_mask 1-D": (
        dict(input_ids=IDS, attention_mask=torch.ones(6)),
        r"`attention_mask` must be 2-D \(batch, seq\) of 0/1, or a prepared 4-D .* got a 1-D "
        r"tensor of shape \(6,\)",
    ),
    "attention_mask 3-D": (
        dict(input_ids=IDS[:1], attention_mask=torch.ones(1, 6, 6)),
        r"`attention_mask` must be 2-D .* got a 3-D tensor of shape \(1, 6, 6\)",
    ),
    "attention_mask float 0.5": (
        dict(input_ids=IDS, attention_mask=torch.full((2, 6), 0.5)),
        r"`attention_mask` must be 0 \(padding\) or 1 \(token\) in a 2-D mask .*got 0.5",
    ),
    "attention_mask of another shape": (
        dict(input_ids=IDS, attention_mask=torch.ones(2, 5)),
        r"`attention_mask` must be of shape \(batch, seq\) = \(2, 6\) like the input, "
        r"got shape \(2, 5\)",
    ),
    "attention_mask 4-D of integers": (
        dict(input_ids=IDS, attention_mask=torch.ones(2, 1, 6, 6, dtype=torch.long)),
        r"`attention_mask` must be a 4-D mask of booleans .* got dtype torch.int64",
    ),
    "labels of another shape": (
        dict(input_ids=IDS, labels=IDS[:, :3]),
        r"`labels` must be of the input's shape \(batch, seq\) = \(2, 6\), got shape "
        r"\(2, 3\)",
    ),
    "labels >= vocab_size": (
        dict(input_ids=IDS, labels=torch.full((2, 6), -100).index_fill(1, torch.tensor([4]), 150)),
        r"`labels` must be ids in \[0, 99\] \(the vocabulary\) or -100 \(not scored\), got "
        r"150 at \(0, 4\)",
    ),
    "labels int32": (dict(input_ids=IDS, labels=IDS.int()), r"`labels` must be token ids of dtype torch.long"),
    "an empty sequence": (
        dict(input_ids=torch.zeros(1, 0, dtype=torch.long)),
        r"`input_ids` must be non-empty: at least one row of at least one token, got shape "
        r"\(1, 0\)",
    ),
    "an empty batch": (dict(input_ids=torch.zeros(0, 6, dtype=torch.long)), r"`input_ids` must be non-empty"),
    "inputs_embeds of the wrong width": (
        dict(inputs_embeds=torch.randn(2, 6, 31)),
        r"`inputs_embeds` must be of shape \(batch, seq, hidden_size=32\), got shape "
        r"\(2, 6, 31\)",
    ),
    "inputs_embeds of integers": (
        dict(inputs_embeds=torch.ones(2, 6, 32, dtype=torch.long)),
        r"`inputs_embeds` must be a floating-point tensor, got dtype torch.int64",
    ),
    "longer than max_position_embeddings": (
        dict(input_ids=torch.ones(1, 257, dtype=torch.long)),
        r"`input_ids` must be at most `max_position_embeddings` = 256 tokens long "
        r".*got 257 tokens in a row",
    ),
    "position_ids 1-D": (
        dict(input_ids=IDS, position_ids=torch.arange(6)),
        r"`position_ids` must be of shape \(batch, seq\) = \(2, 6\) \(or \(1, 6\)\) like the input, "
        r"got shape \(6,\)",
    ),
    "position_ids float": (
        dict(input_ids=IDS, position_ids=torch.arange(6.0)[None]),
        r"`position_ids` must be integer positions of dtype torch.long",
    ),
    "both input_ids and inputs_embeds": (
        dict(input_ids=IDS, inputs_embeds=torch.randn(2, 6, 32)),
        r"pass exactly one of `input_ids` or `inputs_embeds`; got both",
    ),
    "neither": (dict(), r"pass exactly one of `input_ids` or `inputs_embeds`; got neither"),
}


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_a_bad_input_is_one_clear_line(model, case):
    inputs, message = BAD_INPUTS[case]
    with pytest.raises(ValueError, match=message) as error:
        model(**inputs)
    text = str(error.value)
    assert "\n" not in text and text.startswith(("LLaDAModel.forward: ", "LLaDAForMaskedDiffusion.forward: "))


def test_the_base_model_checks_too(model):
    with pytest.raises(ValueError, match=r"LLaDAModel.forward: `input_ids` must be ids in \[0, 99\]"):
        model.model(torch.tensor([[1, 100]]))


def test_legitimate_unusual_inputs_pass(model):
    padded = torch.tensor([[0, 0, 13, 14, 15, 16], [21, 22, 23, 24, 25, 26]])
    mask = (padded != 0).long()
    with torch.no_grad():
        reference = model(padded, attention_mask=mask).logits
        for same_mask in (mask.bool(), mask.float(), mask.int()):  # a 0/1 mask of any dtype
            torch.testing.assert_close(model(padded, attention_mask=same_mask).logits, reference)
        additive = torch.zeros(2, 1, 6, 6).masked_fill(~mask.bool()[:, None, None, :], torch.finfo(torch.float).min)
        boolean = mask.bool()[:, None, None, :].expand(2, 1, 6, 6)
        for prepared in (additive, boolean, boolean[:1]):  # 4-D: used as given (a batch of 1 broadcasts)
            assert model(padded, attention_mask=prepared).logits.shape == (2, 6, 100)
        positions = torch.arange(6)[None]  # (1, seq) positions shared by the batch
        torch.testing.assert_close(model(IDS, position_ids=positions).logits, model(IDS).logits)
        assert model(IDS.int()).logits.shape == (2, 6, 100)
        labels = torch.full_like(IDS, -100)
        labels[:, 2] = IDS[:, 2]
        assert torch.isfinite(model(IDS, labels=labels).loss)


def test_padding_does_not_count_towards_max_position_embeddings():
    model = tiny_model(max_position_embeddings=8)
    padded = torch.cat([torch.zeros(1, 4, dtype=torch.long), torch.full((1, 8), 11)], dim=1)  # 12 columns, 8 tokens
    assert model(padded, attention_mask=(padded != 0).long()).logits.shape == (1, 12, 100)
    with pytest.raises(ValueError, match="got 9 tokens in a row"):
        padded[0, 3] = 11
        model(padded, attention_mask=(padded != 0).long())


def test_dynamic_rope_may_go_beyond_max_position_embeddings():
    model = tiny_model(
        max_position_embeddings=8, rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0}
    )
    assert model(torch.full((1, 12), 11)).logits.shape == (1, 12, 100)


def test_value_checks_run_on_cpu_or_with_the_flag(monkeypatch):
    on_device = torch.empty(2, 3, device="meta")  # stands for an accelerator's tensor: reading it would sync
    monkeypatch.delenv(VALUE_CHECKS_VARIABLE, raising=False)
    assert checks_values(torch.zeros(2, 3)) and not checks_values(on_device)
    monkeypatch.setenv(VALUE_CHECKS_VARIABLE, "1")
    assert checks_values(on_device)
    monkeypatch.setenv(VALUE_CHECKS_VARIABLE, "0")
    assert not checks_values(on_device)


def test_the_checks_compile_in_one_full_graph(model):
    torch._dynamo.reset()
    counter = GraphCounter()
    compiled = torch.compile(model.forward, backend=counter, fullgraph=True, dynamic=False)
    mask = torch.ones_like(IDS)
    mask[1, :2] = 0
    with torch.no_grad():
        torch.testing.assert_close(
            compiled(input_ids=IDS, attention_mask=mask).logits, model(input_ids=IDS, attention_mask=mask).logits
        )
    assert counter.graphs == 1  # no graph break: the value checks are skipped while tracing
    # shape checks still hold: dynamo reports the ValueError raised while tracing a full graph (its message inside)
    with pytest.raises(Exception, match=r"`input_ids` must be 2-D, of shape \(batch, seq\)"):
        compiled(input_ids=IDS[0])

    def scored(labels):  # the label checks alone (the loss itself indexes by data, which needs a graph break)
        check_labels(model.config, labels, IDS, None)
        return labels.clamp(min=0)

    labels = torch.where(IDS % 2 == 0, IDS, -100)
    assert torch.equal(torch.compile(scored, backend=counter, fullgraph=True)(labels), labels.clamp(min=0))
    torch._dynamo.reset()


def test_generate_refuses_a_prompt_id_outside_the_vocabulary(model):
    with pytest.raises(
        ValueError,
        match=r"diffusion_generate: `input_ids` must be ids in \[0, 99\] \(the "
        r"vocabulary\), got 150 at \(0, 1\)",
    ):
        model.diffusion_generate(torch.tensor([[5, 150, 7]]), max_new_tokens=4)
    with pytest.raises(
        ValueError,
        match=r"`input_ids` must be an integer tensor .* got Tensor\(1, 2\) of dtype "
        r"torch.bool",
    ):
        model.diffusion_generate(torch.tensor([[True, False]]), max_new_tokens=4)
    with pytest.raises(ValueError, match=r"got -3 at \(1, 0\)"):  # padding goes through the embedding too
        model.diffusion_generate(
            torch.tensor([[5, 6], [-3, 7]]), attention_mask=torch.tensor([[1, 1], [0, 1]]), max_new_tokens=4
        )
