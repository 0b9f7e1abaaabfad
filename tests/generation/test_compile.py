"""`diffusion_generate(compile=True)`: the per-step forward through torch.compile, one graph per kind of pass."""

import pytest
import torch
from transformers import CompileConfig

from helpers import GraphCounter, prompts_batch, varied_model

CASES = {  # settings -> graphs: a full pass; or a cache refresh and a windowed pass (and a vicinity refresh)
    "no cache": (dict(), 1),
    "no cache, guidance": (dict(cfg_scale=1.0), 1),
    "prefix": (dict(use_cache="prefix"), 2),
    "dual, guidance": (dict(use_cache="dual", cfg_scale=1.0), 2),
    "dual, threshold, early stop": (dict(use_cache="dual", threshold=0.2, early_stop=True), 2),
    "prefix, refresh every 2": (dict(use_cache="prefix", cache_refresh_interval=2, temperature=1.0, seed=0), 2),
    # the vicinity refresh adds a third kind: the previous block and the block, at every block start after the first
    "dual, vicinity refresh": (dict(use_cache="dual", cache_refresh_window="vicinity"), 3),
    "dual, vicinity refresh, inverse-CDF nucleus": (
        dict(
            use_cache="dual",
            cache_refresh_window="vicinity",
            temperature=1.0,
            top_p=0.8,
            seed=0,
            token_sampling="inverse_cdf",
        ),
        3,
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_one_full_graph_per_kind_of_pass_and_the_eager_tokens(case):
    settings, graphs = CASES[case]
    model, (ids, attention_mask) = varied_model(), prompts_batch()
    settings = dict(max_new_tokens=12, block_length=4, return_dict_in_generate=True, **settings)
    eager = model.diffusion_generate(ids, attention_mask=attention_mask, **settings)
    torch._dynamo.reset()
    counter = GraphCounter()  # fullgraph: a graph break in the forward is an error
    compiled = model.diffusion_generate(
        ids,
        attention_mask=attention_mask,
        compile=True,
        compile_config=CompileConfig(backend=counter, fullgraph=True, dynamic=False),
        **settings,
    )
    assert torch.equal(compiled.sequences, eager.sequences) and compiled.nfe == eager.nfe
    assert counter.graphs == graphs  # every block and step reuses them: static shapes
    again = model.diffusion_generate(
        ids,
        attention_mask=attention_mask,
        compile=True,
        compile_config=CompileConfig(backend=counter, fullgraph=True, dynamic=False),
        **settings,
    )
    assert torch.equal(again.sequences, eager.sequences) and counter.graphs == graphs  # kept for the next call


def test_inductor_gives_the_eager_tokens():
    """The default settings (inductor, full graph, static shapes) on the dual cache: a refresh and windowed passes
    that write into the cache in place (about a minute of compilation on two CPU cores)."""
    model = varied_model()
    ids = torch.tensor([[11, 12, 13, 14]])
    settings = dict(max_new_tokens=8, block_length=4, use_cache="dual")
    torch._dynamo.reset()  # not the graphs of the other tests
    assert torch.equal(
        model.diffusion_generate(ids, compile=True, **settings), model.diffusion_generate(ids, **settings)
    )


def test_compile_flag_is_checked():
    with pytest.raises(ValueError, match="`compile` must be a bool"):
        varied_model().diffusion_generate(torch.tensor([[11]]), max_new_tokens=2, compile="yes")


def test_past_the_recompile_limit_new_shapes_run_eagerly_and_it_is_reported_once(caplog):
    from transformers.utils import logging as hf_logging

    model, counter = varied_model(), GraphCounter()
    config = CompileConfig(backend=counter, fullgraph=True, dynamic=False)
    prompts = [torch.full((1, length), 11) for length in (1, 2, 3, 4, 1)]  # a shape each, then the first again
    eager = [model.diffusion_generate(ids, max_new_tokens=4) for ids in prompts]
    torch._dynamo.reset()
    hf_logging.warning_once.cache_clear()  # "once" is once per process: this test must see the first time
    hf_logging.enable_propagation()
    try:
        with caplog.at_level("WARNING"), torch._dynamo.config.patch(recompile_limit=2):
            compiled = [
                model.diffusion_generate(ids, max_new_tokens=4, compile=True, compile_config=config) for ids in prompts
            ]
    finally:
        hf_logging.disable_propagation()
        torch._dynamo.reset()
    assert all(torch.equal(a, b) for a, b in zip(compiled, eager))  # the fullgraph limit no longer fails the call
    assert counter.graphs == 2  # two shapes compiled; the third and fourth ran eagerly, the first again compiled
    assert caplog.text.count("reached torch._dynamo's recompile limit") == 1
