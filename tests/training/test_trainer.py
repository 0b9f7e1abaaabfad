"""LLaDATrainer and the plain Trainer with our collator: learning, gradient accumulation, resume, evaluation,
checkpoints, samples."""

import os

import pytest
import torch
from datasets import Dataset
from transformers import AutoTokenizer, Trainer, TrainerCallback, TrainingArguments

from helpers import arguments, blocks, make_model, tiny_trainer
from llada.saved_files import HUB_CODE_FILES
from llada.training.block_collator import DataCollatorForBlockDiffusion
from llada.training.callbacks import SampleGenerationCallback, fit_generation_length
from llada.training.collator import DataCollatorForMaskedDiffusion
from llada.training.tokenizers import build_byte_tokenizer
from llada.training.trainer import LLaDATrainer


@pytest.fixture(scope="module")
def tokenizer():
    return build_byte_tokenizer()


def test_training_lowers_the_loss_and_changes_every_parameter(tmp_path, tokenizer):
    model = make_model(tokenizer)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainer = tiny_trainer(model, tokenizer, arguments(tmp_path, max_steps=25, eval_num_t_samples=2))
    first_eval = trainer.evaluate()["eval_loss"]
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    assert trainer.evaluate()["eval_loss"] < first_eval
    unchanged = [name for name, p in model.named_parameters() if torch.equal(p.detach(), before[name])]
    assert unchanged == []


@pytest.mark.parametrize("block_size", [None, 4], ids=["full", "block"])
def test_gradient_accumulation_2x4_equals_batch_8(tmp_path, tokenizer, block_size):
    # Pre-masked examples, so both runs see exactly the same masks and p.
    if block_size is None:
        collator = DataCollatorForMaskedDiffusion(tokenizer=tokenizer, seed=0)
    else:  # block diffusion: one time per block, the clean copy rebuilt from the labels in the same pass
        collator = DataCollatorForBlockDiffusion(tokenizer=tokenizer, seed=0, block_size=block_size)
    masked = collator([{"input_ids": row} for row in blocks(8)["input_ids"]])
    dataset = Dataset.from_dict({key: value.tolist() for key, value in masked.items()})

    def one_step(batch_size, accumulation):
        model = make_model(tokenizer, block_size=block_size)
        args = arguments(
            tmp_path / f"ga{accumulation}",
            max_steps=1,
            per_device_train_batch_size=batch_size,
            gradient_accumulation_steps=accumulation,
            optim="sgd",
            learning_rate=1.0,
            lr_scheduler_type="constant",
            max_grad_norm=0.0,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=dataset,
            data_collator=lambda rows: {k: torch.tensor([r[k] for r in rows]) for k in rows[0]},
        )
        trainer.train()
        loss = next(entry["loss"] for entry in trainer.state.log_history if "loss" in entry)
        return loss, {name: p.detach().clone() for name, p in model.named_parameters()}

    loss_8, weights_8 = one_step(8, 1)
    loss_4x2, weights_4x2 = one_step(4, 2)
    full = make_model(tokenizer, block_size=block_size)(**{k: v for k, v in masked.items()}).loss.item()
    assert loss_8 == pytest.approx(full, rel=1e-4)
    assert loss_4x2 == pytest.approx(loss_8, rel=1e-4)  # no x GA inflation
    for name in weights_8:
        torch.testing.assert_close(weights_4x2[name], weights_8[name], rtol=1e-4, atol=1e-6)


def test_plain_trainer_with_our_collator(tmp_path, tokenizer):
    model = make_model(tokenizer)
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=5,
        per_device_train_batch_size=8,
        use_cpu=True,
        report_to="none",
        dataloader_num_workers=0,
        logging_steps=1,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=blocks(),
        eval_dataset=blocks(16, offset=2000),
        data_collator=DataCollatorForMaskedDiffusion(tokenizer=tokenizer, seed=0),
    )
    trainer.train()
    assert all(torch.isfinite(torch.tensor(e["loss"])) for e in trainer.state.log_history if "loss" in e)
    assert torch.isfinite(torch.tensor(trainer.evaluate()["eval_loss"]))


class StopAt(TrainerCallback):
    """Interrupts training after `step` (the schedule still targets the full `max_steps`)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, tokenizer):
    def train(output_dir, stop_at=None, resume=None):
        args = arguments(output_dir, max_steps=6, save_strategy="steps", save_steps=3, random_length_probability=0.5)
        trainer = LLaDATrainer(
            model=make_model(tokenizer),
            args=args,
            train_dataset=blocks(),
            processing_class=tokenizer,
            callbacks=[StopAt(stop_at)] if stop_at else None,
        )
        trainer.train(resume_from_checkpoint=resume)
        return trainer.model

    torch.manual_seed(0)
    full = train(tmp_path / "full")
    torch.manual_seed(0)
    train(tmp_path / "cut", stop_at=3)
    resumed = train(tmp_path / "cut", resume=str(tmp_path / "cut" / "checkpoint-3"))
    for (name, a), (_, b) in zip(full.named_parameters(), resumed.named_parameters()):
        torch.testing.assert_close(a, b, msg=name)


def test_evaluation_is_seeded_and_reports_the_perplexity_bound(tmp_path, tokenizer):
    trainer = LLaDATrainer(
        model=make_model(tokenizer),
        args=arguments(tmp_path, eval_num_t_samples=2),
        train_dataset=blocks(),
        eval_dataset=blocks(10, offset=2000),
        processing_class=tokenizer,
    )
    first, second = trainer.evaluate(), trainer.evaluate()
    assert first["eval_loss"] == second["eval_loss"]
    assert first["eval_perplexity_bound"] == pytest.approx(torch.tensor(first["eval_loss"]).exp().item())


def test_checkpoints_hold_code_tokenizer_samples_and_plot(tmp_path, tokenizer):
    args = arguments(
        tmp_path,
        max_steps=4,
        eval_strategy="steps",
        eval_steps=2,
        save_strategy="steps",
        save_steps=2,
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        report_to="tensorboard",
        num_sample_generations=2,
        sample_max_new_tokens=8,
        sample_prompt_length=4,
        plot_loss_curve=True,
    )
    trainer = tiny_trainer(make_model(tokenizer), tokenizer, args)
    trainer.train()
    for step in (2, 4):
        files = set(os.listdir(tmp_path / f"checkpoint-{step}"))
        assert {
            "config.json",
            "model.safetensors",
            *HUB_CODE_FILES,
            "tokenizer.json",
            "tokenizer_config.json",
        } <= files
    assert AutoTokenizer.from_pretrained(tmp_path / "checkpoint-4").mask_token_id == tokenizer.mask_token_id
    assert (tmp_path / "loss_curve.png").stat().st_size > 1000
    assert trainer.state.best_model_checkpoint is not None
    samples = (tmp_path / "samples.txt").read_text()
    assert samples.count("samples at step") == 2
    events = list((tmp_path / "runs").rglob("events.out.tfevents.*"))
    assert events and any(b"samples" in path.read_bytes() for path in events)


def test_fit_generation_length():
    assert fit_generation_length(96, None, 8, room=112) == (96, None, 8)  # fits: unchanged
    assert fit_generation_length(96, 48, 8, room=50) == (48, 24, 8)  # whole blocks, steps scaled down
    assert fit_generation_length(96, 4, 8, room=50) == (48, 6, 8)  # at least one step per block
    assert fit_generation_length(96, 96, 64, room=50) == (50, 50, None)  # a block longer than the room: one block
    assert fit_generation_length(96, None, None, room=0)[0] == 0  # nothing fits


def test_sample_settings_become_the_generation_defaults_and_the_samples_use_them(tmp_path, tokenizer):
    model = make_model(tokenizer)  # 64 positions
    args = arguments(
        tmp_path,
        num_sample_generations=2,
        sample_max_new_tokens=60,
        sample_block_length=8,
        sample_prompt_length=4,
        sample_temperature=0.0,
        sample_remasking="margin",
        sample_top_p=0.9,
        sample_top_k=20,
    )
    trainer = LLaDATrainer(
        model=model, args=args, train_dataset=blocks(), eval_dataset=blocks(4, offset=2000), processing_class=tokenizer
    )
    config = model.generation_config
    assert (config.max_new_tokens, config.steps, config.block_length) == (56, None, 8)  # 4 + 56 <= 64
    assert (config.temperature, config.remasking, config.top_p, config.top_k) == (0.0, "margin", 0.9, 20)
    callback = next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, SampleGenerationCallback))
    texts = callback.generate(model)
    prompt = blocks(1, offset=2000)[0]["input_ids"][:4]
    expected = model.diffusion_generate(torch.tensor([prompt]), seed=args.eval_seed)[0]
    assert texts[0] == tokenizer.decode(expected, skip_special_tokens=True)
