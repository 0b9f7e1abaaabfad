"""Training a block diffusion model: LLaDATrainer learns and reports its in-order perplexity, the in-order share
follows its schedule, the block config of the main job, and `llada-train --block_size`."""

import math

import pytest
import torch

from helpers import TINY_TRAIN_ARGS, arguments, blocks, make_model, tiny_trainer
from llada.evaluation import in_order_perplexity
from llada.training.block_collator import DataCollatorForBlockDiffusion


def test_trainer_trains_a_block_model(tmp_path):
    from llada.training.tokenizers import build_byte_tokenizer

    tokenizer = build_byte_tokenizer()
    model = make_model(tokenizer, block_size=4)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainer = tiny_trainer(model, tokenizer, arguments(tmp_path, max_steps=25, eval_num_t_samples=2))
    assert isinstance(trainer.data_collator, DataCollatorForBlockDiffusion) and trainer.data_collator.block_size == 4
    first_eval = trainer.evaluate()
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    last_eval = trainer.evaluate()
    assert last_eval["eval_loss"] < first_eval["eval_loss"]
    assert last_eval["eval_perplexity_bound"] == pytest.approx(math.exp(last_eval["eval_loss"]))
    assert [name for name, p in model.named_parameters() if torch.equal(p.detach(), before[name])] == []


def test_the_block_config_is_the_main_job_size_with_bytes_and_blocks():
    from llada.training.run import parse_training_args

    main_job = parse_training_args([])
    model_args, data_args, training_args = parse_training_args(["--config", "tinyshakespeare-block4"])
    assert model_args.block_size == 4 and training_args.masking is None  # the block collator's default: exact
    assert (
        training_args.max_steps % training_args.eval_steps == 0
        and training_args.save_steps == training_args.eval_steps
    )
    for name in ("hidden_size", "num_hidden_layers", "intermediate_size"):
        assert getattr(model_args, name) == getattr(main_job[0], name)
    assert model_args.tokenizer == "bytes" and not training_args.complementary_masking
    assert data_args.max_seq_length == main_job[1].max_seq_length


def test_in_order_share_follows_its_schedule(tmp_path):
    from transformers import TrainerCallback

    from llada.training.tokenizers import build_byte_tokenizer
    from llada.training.trainer import LLaDATrainer

    tokenizer = build_byte_tokenizer()
    shares = []

    class Record(TrainerCallback):  # the share each step ran with
        def on_step_end(self, args, state, control, **kwargs):
            shares.append(trainer.data_collator.in_order_probability)

    trainer = LLaDATrainer(
        model=make_model(tokenizer, block_size=4),
        train_dataset=blocks(),
        args=arguments(tmp_path, max_steps=5, in_order_probability=1.0, in_order_probability_end=0.0),
        processing_class=tokenizer,
        callbacks=[Record()],
    )
    trainer.train()
    assert shares == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
    with pytest.raises(ValueError, match="in_order_probability_end"):
        arguments(tmp_path, in_order_probability_end=1.5)
    with pytest.raises(ValueError, match="dataloader_num_workers"):
        arguments(tmp_path, in_order_probability_end=0.0, dataloader_num_workers=2)
    with pytest.raises(ValueError, match="block models"):  # a full-attention model has no in-order blocks
        LLaDATrainer(
            model=make_model(tokenizer),
            args=arguments(tmp_path, in_order_probability_end=0.0),
            train_dataset=blocks(),
            processing_class=tokenizer,
        )


def test_trainer_reports_the_in_order_perplexity_of_a_block_model(tmp_path):
    from llada.training.tokenizers import build_byte_tokenizer
    from llada.training.trainer import LLaDATrainer

    tokenizer = build_byte_tokenizer()
    model = make_model(tokenizer, block_size=4).eval()
    eval_set = blocks(8, offset=2000)
    trainer = LLaDATrainer(
        model=model,
        args=arguments(tmp_path, eval_num_t_samples=2, eval_in_order=True, per_device_eval_batch_size=3),
        eval_dataset=eval_set,
        processing_class=tokenizer,
    )
    metrics = trainer.evaluate()
    expected = in_order_perplexity(model, torch.tensor(eval_set["input_ids"]), show_progress=False)["perplexity"]
    assert metrics["eval_in_order_perplexity"] == pytest.approx(expected, rel=1e-5)
    assert (
        "eval_in_order_perplexity"
        not in LLaDATrainer(  # off by default
            model=model,
            args=arguments(tmp_path, eval_num_t_samples=2),
            eval_dataset=eval_set,
            processing_class=tokenizer,
        ).evaluate()
    )


def test_llada_train_block_size(tmp_path):
    from transformers import AutoModel

    from llada.cli.train import main

    out = tmp_path / "block"
    assert (
        main(
            [
                "--output_dir",
                str(out),
                "--block_size",
                "4",
                "--max_steps",
                "3",
                "--eval_steps",
                "3",
                "--sample_block_length",
                "8",
                *TINY_TRAIN_ARGS,
            ]
        )
        == 0
    )
    model = AutoModel.from_pretrained(out, trust_remote_code=True)
    assert model.config.block_size == 4
    assert model.generation_config.block_length == 4  # a block model samples block by block
    with pytest.raises(ValueError, match="--block_size"):
        from llada.training.models import ModelArguments

        ModelArguments(model_type="autoregressive", block_size=4)
