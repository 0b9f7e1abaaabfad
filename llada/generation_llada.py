"""Generation for LLaDA: `LLaDAGenerationConfig` and the `diffusion_generate` mixin (filled in by the sampler work).

This is a Hub file: it imports only the standard library, torch, the public transformers API and its sibling
`configuration_llada`.
"""


class LLaDAGenerationMixin:
    """Mixin giving `LLaDAForMaskedDiffusion` its `diffusion_generate` / `generate` methods."""
