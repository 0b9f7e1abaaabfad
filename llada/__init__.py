"""llada: a Hugging Face-native masked-diffusion language model (LLaDA-style)."""

from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

from .configuration_llada import LLaDAConfig
from .diffusion_llada import forward_process, masked_diffusion_loss
from .generation_config_llada import LLaDAGenerationConfig
from .generation_llada import LLaDAGenerateOutput
from .modeling_llada import LLaDAForMaskedDiffusion, LLaDAModel, LLaDAPreTrainedModel

__version__ = "0.1.0"

# Local use without trust_remote_code: AutoConfig / AutoModel / AutoModelForMaskedLM know "llada".
AutoConfig.register(LLaDAConfig.model_type, LLaDAConfig, exist_ok=True)
AutoModel.register(LLaDAConfig, LLaDAForMaskedDiffusion, exist_ok=True)
AutoModelForMaskedLM.register(LLaDAConfig, LLaDAForMaskedDiffusion, exist_ok=True)

__all__ = [
    "LLaDAConfig",
    "LLaDAGenerateOutput",
    "LLaDAGenerationConfig",
    "LLaDAForMaskedDiffusion",
    "LLaDAModel",
    "LLaDAPreTrainedModel",
    "forward_process",
    "masked_diffusion_loss",
]
