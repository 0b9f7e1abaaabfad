"""Quick start: build a small LLaDA model, save it, reload it through `trust_remote_code`, and use it.

python examples/quickstart.py [--output_dir outputs/quickstart]
"""

import argparse
import math

import torch
from transformers import AutoModel

from llada import LLaDAConfig, LLaDAForMaskedDiffusion


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default="outputs/quickstart")
    args = parser.parse_args()

    config = LLaDAConfig(
        vocab_size=260,
        hidden_size=64,
        intermediate_size=172,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        mask_token_id=259,
        pad_token_id=256,
        bos_token_id=257,
        eos_token_id=258,
    )
    torch.manual_seed(0)
    model = LLaDAForMaskedDiffusion(config).eval()
    model.save_pretrained(args.output_dir)
    print(f"saved a {sum(p.numel() for p in model.parameters()):,}-parameter LLaDA model to {args.output_dir}")

    reloaded = AutoModel.from_pretrained(args.output_dir, trust_remote_code=True).eval()
    print(f"reloaded with AutoModel as {type(reloaded).__module__}.{type(reloaded).__name__}")

    text = list(b"To be, or not to be")
    ids = torch.tensor([text])
    masked = ids.clone()
    masked[0, 3:5] = config.mask_token_id  # hide "be"
    with torch.no_grad():
        logits, again = model(masked).logits, reloaded(masked).logits
    print(f"same logits after the round trip: {torch.equal(logits, again)}")
    # the training loss on the masked positions, weighted by 1 / p_mask as in LLaDA pre-training
    labels = torch.where(masked == config.mask_token_id, ids, torch.full_like(ids, -100))
    loss = model(masked, labels=labels, p_mask=torch.tensor([2 / len(text)])).loss
    print(
        f"masked-diffusion loss of the untrained model on 2 hidden bytes: {loss.item():.3f} "
        f"(uniform guessing gives ln {config.vocab_size} = {math.log(config.vocab_size):.3f})"
    )


if __name__ == "__main__":
    main()
