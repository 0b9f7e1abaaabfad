"""`LLaDATrainingArguments` and `LLaDATrainer`: transformers' Trainer with masked-diffusion evaluation.

The Trainer does the training as is (the model computes its own loss from the collator's batch). What changes:
evaluation reports the ELBO perplexity bound with a fixed seed and several `t` samples per sequence (comparable
between runs and with an autoregressive perplexity), samples are generated at each evaluation, and a loss-curve PNG
is written at the end. Checkpoints are the Trainer's: `save_pretrained` writes the Hub code files (our classes carry
`_auto_class`) and the tokenizer is saved with them because it is the trainer's `processing_class`.
"""

import dataclasses
import math
import os
from dataclasses import MISSING, dataclass, field
from typing import Optional

import torch
from transformers import (
    DataCollatorForLanguageModeling,
    DataCollatorForSeq2Seq,
    GenerationConfig,
    Trainer,
    TrainingArguments,
)
from transformers.integrations import TensorBoardCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..evaluation import T_SAMPLING_SCHEMES, elbo_nll, in_order_nll
from ..sampling_llada import REMASKING_STRATEGIES
from ..saved_files import make_tokenizer_config_portable
from .block_collator import DataCollatorForBlockDiffusion
from .callbacks import InOrderScheduleCallback, LossCurveCallback, SampleGenerationCallback, fit_generation_length
from .checkpoints import check_max_steps, removing_partial_checkpoint, staged_folder
from .collator import MASKING_SCHEMES, TRAIN_T_SAMPLING, DataCollatorForMaskedDiffusion
from .hub_callback import HubCodeFilesCallback
from .models import is_masked_diffusion_model
from .runtime import parse_num_threads


def _trainer_field(name: str, default=MISSING, **metadata):
    """The field `name` of `TrainingArguments` with its default and help, `metadata` (such as `aliases`, the extra
    command-line names `HfArgumentParser` gives it) and `default` changed where given."""
    base = TrainingArguments.__dataclass_fields__[name]
    return field(default=base.default if default is MISSING else default, metadata={**base.metadata, **metadata})


@dataclass
class LLaDATrainingArguments(TrainingArguments):
    r"""
    [`TrainingArguments`] plus the options of masked-diffusion training, evaluation and sampling. Every
    `TrainingArguments` option keeps its meaning (AMP with `bf16`/`fp16`, `gradient_checkpointing`, `torch_compile`,
    `resume_from_checkpoint`, `load_best_model_at_end`, `push_to_hub`, ...), with three conveniences:

    - `save_steps` left unset follows `eval_steps` when `load_best_model_at_end` (which needs them to line up);
    - `load_best_model_at_end` is switched off when nothing is evaluated (`eval_strategy="no"`);
    - `dataloader_pin_memory` is off without CUDA (pinning only speeds up host-to-GPU copies).

    On the command line (`HfArgumentParser`, as `llada-train` uses it) `--model_dir`, `--epochs`, `--batch_size` and
    `--lr` are aliases of `--output_dir`, `--num_train_epochs`, `--per_device_train_batch_size` and
    `--learning_rate`.
    """

    output_dir: Optional[str] = _trainer_field("output_dir", aliases=["--model_dir"])
    num_train_epochs: float = _trainer_field("num_train_epochs", aliases=["--epochs"])
    per_device_train_batch_size: int = _trainer_field("per_device_train_batch_size", aliases=["--batch_size"])
    learning_rate: float = _trainer_field("learning_rate", aliases=["--lr"])
    save_steps: Optional[float] = _trainer_field(
        "save_steps",
        default=None,
        help="Save a checkpoint every X update steps (a float in [0, 1): a ratio of the total steps). Default: "
        "--eval_steps with --load_best_model_at_end, else 500.",
    )

    mask_eps: float = field(
        default=1e-3, metadata={"help": "Smallest masking probability: p = (1 - eps) t + eps with t ~ U(0, 1)."}
    )
    random_length_probability: float = field(
        default=0.01,
        metadata={"help": "Probability that a training batch is cut to a random length in [1, L] (LLaDA: 0.01)."},
    )
    torch_num_threads: Optional[str] = field(
        default=None,
        metadata={
            "help": "Torch threads of this process (torch.set_num_threads): a number, or 'auto' = "
            "OMP_NUM_THREADS when set, else the cores idle when training starts (at least 1), so that "
            "threads do not fight a busy machine for its cores; default: torch's own choice."
        },
    )
    train_t_sampling: str = field(
        default="uniform",
        metadata={
            "help": "How each batch's diffusion times are drawn: uniform (LLaDA) or stratified (one t per "
            "equal stratum of [0, 1): lower-variance loss).",
            "choices": list(TRAIN_T_SAMPLING),
        },
    )
    masking: Optional[str] = field(
        default=None,
        metadata={
            "help": "bernoulli: each token masked with probability p (LLaDA); exact: exactly ceil(t n) of a "
            "row's n tokens, weight n/k (same ELBO, lower variance); block models: of each block. "
            "Default: bernoulli, or exact for a block model.",
            "choices": list(MASKING_SCHEMES),
        },
    )
    complementary_masking: bool = field(
        default=False,
        metadata={
            "help": "Train on every sequence twice per batch, with a mask and its complement, so each token "
            "is scored once per pair (exact masking: a row or block masked whole counts twice, as "
            "the ELBO weighs it); the batch has twice as many rows as sequences."
        },
    )
    shared_clean_copy: bool = field(
        default=True,
        metadata={
            "help": "Block models with complementary masking: both noised copies of a sequence attend to one "
            "clean copy (3 sequence lengths per sequence and step instead of 4; the same loss)."
        },
    )
    in_order_probability: float = field(
        default=0.0,
        metadata={
            "help": "Block models: the share of blocks trained on the in-order likelihood (a suffix from a "
            "uniform j masked, only j scored) instead of the bound; the loss is that mix of the two. "
            "0: the bound only (BD3-LM)."
        },
    )
    in_order_probability_end: Optional[float] = field(
        default=None,
        metadata={
            "help": "Block models: the in-order share at the last step; the share moves linearly from "
            "--in_order_probability to it over the training (e.g. 1 -> 0: in order first, as an "
            "autoregressive model learns, then the bound). None: a constant share."
        },
    )
    eval_num_t_samples: int = field(
        default=4, metadata={"help": "Monte-Carlo samples of t (and masks) per sequence for the ELBO at evaluation."}
    )
    eval_t_sampling: str = field(
        default="stratified",
        metadata={"help": "How the evaluation t samples are drawn.", "choices": list(T_SAMPLING_SCHEMES)},
    )
    eval_seed: int = field(default=1234, metadata={"help": "Seed of the evaluation masks and of the samples."})
    eval_in_order: bool = field(
        default=False,
        metadata={
            "help": "Block models: also report `eval_in_order_perplexity`, the exact likelihood of the model "
            "decoded in order (`llada.evaluation.in_order_nll`; `block_size` more forwards per batch), "
            "on the tokens an autoregressive perplexity scores (the scored ones but a row's first)."
        },
    )
    num_sample_generations: int = field(
        default=2, metadata={"help": "Samples generated and logged at each evaluation (0: none)."}
    )
    sample_prompts: Optional[list[str]] = field(
        default=None,
        metadata={
            "help": "Prompts for those samples; default: the first --sample_prompt_length tokens of the "
            "first validation blocks."
        },
    )
    sample_prompt_length: int = field(default=16, metadata={"help": "Tokens of validation text used as prompt."})
    sample_max_new_tokens: int = field(default=128, metadata={"help": "Tokens generated per sample."})
    sample_steps: Optional[int] = field(
        default=None, metadata={"help": "Diffusion steps per sample; default: --sample_max_new_tokens."}
    )
    sample_block_length: Optional[int] = field(
        default=None, metadata={"help": "Semi-autoregressive block length; default: one block."}
    )
    sample_temperature: float = field(default=0.8, metadata={"help": "Sampling temperature (0: greedy)."})
    sample_top_p: Optional[float] = field(
        default=None,
        metadata={
            "help": "Nucleus sampling of the samples: keep the smallest set of tokens whose "
            "probability reaches this (0 < p <= 1); default: off."
        },
    )
    sample_top_k: Optional[int] = field(
        default=None, metadata={"help": "Sample from the k most likely tokens only; default: off."}
    )
    sample_remasking: str = field(
        default="low_confidence",
        metadata={
            "help": "Which masked positions each step commits: low_confidence (LLaDA), random (ancestral "
            "sampling; better for small models), entropy or margin.",
            "choices": list(REMASKING_STRATEGIES),
        },
    )
    plot_loss_curve: bool = field(default=True, metadata={"help": "Write output_dir/loss_curve.png at the end."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Start a new run in an --output_dir that holds an earlier one: its checkpoints are deleted "
            "first. Without it such a folder is refused (unless --resume_from_checkpoint)."
        },
    )

    def __post_init__(self):
        check_max_steps(self)
        if self.load_best_model_at_end and str(getattr(self.eval_strategy, "value", self.eval_strategy)) == "no":
            self.load_best_model_at_end = False  # nothing to pick the best from without evaluation
        if self.save_steps is None:
            self.save_steps = (self.eval_steps or 500) if self.load_best_model_at_end else 500
        if self.dataloader_pin_memory and not torch.cuda.is_available():
            self.dataloader_pin_memory = False
        super().__post_init__()
        if self.sample_remasking not in REMASKING_STRATEGIES:
            raise ValueError(
                f"`sample_remasking` must be one of {tuple(REMASKING_STRATEGIES)}, got {self.sample_remasking!r}."
            )
        if self.sample_top_p is not None and not 0 < self.sample_top_p <= 1:
            raise ValueError(f"`sample_top_p` must be in (0, 1], got {self.sample_top_p!r}.")
        if self.sample_top_k is not None and (not isinstance(self.sample_top_k, int) or self.sample_top_k < 1):
            raise ValueError(f"`sample_top_k` must be a positive integer, got {self.sample_top_k!r}.")
        if self.eval_t_sampling not in T_SAMPLING_SCHEMES:
            raise ValueError(f"`eval_t_sampling` must be one of {T_SAMPLING_SCHEMES}, got {self.eval_t_sampling!r}.")
        if not isinstance(self.eval_num_t_samples, int) or self.eval_num_t_samples < 1:
            raise ValueError(f"`eval_num_t_samples` must be a positive integer, got {self.eval_num_t_samples!r}.")
        if self.torch_num_threads is not None:
            self.torch_num_threads = parse_num_threads(self.torch_num_threads)
        if self.masking is not None and self.masking not in MASKING_SCHEMES:
            raise ValueError(f"`masking` must be one of {MASKING_SCHEMES}, got {self.masking!r}.")
        for name in ("in_order_probability", "in_order_probability_end"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not 0.0 <= value <= 1.0):
                raise ValueError(f"`{name}` must be a number in [0, 1], got {value!r}.")
        if self.in_order_probability_end is not None and self.dataloader_num_workers > 0:
            raise ValueError(
                "`in_order_probability_end` changes the collator's share at every step, which worker processes do not "
                f"see: use `dataloader_num_workers=0` (got {self.dataloader_num_workers})."
            )
        if self.train_t_sampling not in TRAIN_T_SAMPLING:
            raise ValueError(f"`train_t_sampling` must be one of {TRAIN_T_SAMPLING}, got {self.train_t_sampling!r}.")


class LLaDATrainer(Trainer):
    r"""
    [`Trainer`] for LLaDA models and their autoregressive baselines.

    Defaults it fills in: the data collator (`DataCollatorForMaskedDiffusion` for LLaDA, a causal-LM collator for the
    baseline), a sample-generation callback, a loss-curve callback, and a callback that puts the Hub code files into
    every `push_to_hub` commit. It overrides evaluation, and `_save` so that every saved tokenizer config also loads
    on transformers 4.x (`make_tokenizer_config_portable`):

    - batches are collated clean (no masking) and `prediction_step` returns the ELBO (`llada.evaluation.elbo_nll`)
      per token, so `eval_loss` is an upper bound on the NLL in nats per token, estimated with
      `eval_num_t_samples` stratified `t` per sequence and masks drawn from a generator seeded with `eval_seed`;
    - the metrics gain `eval_perplexity_bound = exp(eval_loss)` (LLaDA) or `eval_perplexity` (baseline), and with
      `eval_in_order` a block model's `eval_in_order_perplexity` (its exact likelihood decoded in order).

    `metric_for_best_model="eval_loss"` with `load_best_model_at_end=True` thus keeps the checkpoint with the best
    bound. For a LLaDA model the `sample_*` arguments become `model.generation_config` ([`fit_generation_config`]):
    the samples logged during training are what the saved model generates by default.
    """

    def __init__(
        self,
        model=None,
        args: Optional[TrainingArguments] = None,
        data_collator=None,
        train_dataset=None,
        eval_dataset=None,
        processing_class=None,
        callbacks=None,
        **kwargs,
    ):
        self.is_masked_diffusion = is_masked_diffusion_model(model)
        if data_collator is None and processing_class is not None:
            data_collator = self._default_collator(model, args, processing_class, train_dataset)
        callbacks = list(callbacks or [])
        if self.is_masked_diffusion and hasattr(args, "sample_max_new_tokens"):
            fit_generation_config(model, args)  # the samples are what the saved model generates by default
        sample_callback = self._sample_callback(args, processing_class, eval_dataset, self.is_masked_diffusion)
        if sample_callback is not None:
            callbacks.append(sample_callback)
        if getattr(args, "plot_loss_curve", False):
            callbacks.append(LossCurveCallback())
        callbacks.append(HubCodeFilesCallback())  # every Hub push gets the code files (no-op without push_to_hub)
        if getattr(args, "in_order_probability_end", None) is not None:
            if not isinstance(data_collator, DataCollatorForBlockDiffusion):
                raise ValueError(
                    "`in_order_probability_end` needs a block model's DataCollatorForBlockDiffusion; got "
                    f"{type(data_collator).__name__}."
                )
            callbacks.append(
                InOrderScheduleCallback(data_collator, args.in_order_probability, args.in_order_probability_end)
            )
        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            callbacks=callbacks,
            **kwargs,
        )
        if sample_callback is not None:  # the samples go to the same TensorBoard run as the losses
            sample_callback.tensorboard_callback = next(
                (cb for cb in self.callback_handler.callbacks if isinstance(cb, TensorBoardCallback)), None
            )
        self._elbo_generator = None
        self._in_order_totals = None  # (NLL sum, tokens) of `eval_in_order` during an evaluation

    # ----------------------------------------------------------------------------------------------------------
    # set-up helpers

    def _default_collator(self, model, args, tokenizer, train_dataset):
        is_sft = "labels" in (getattr(train_dataset, "column_names", None) or [])
        if self.is_masked_diffusion:
            options = dict(
                tokenizer=tokenizer,
                mask_token_id=model.config.mask_token_id,
                eps=getattr(args, "mask_eps", 1e-3),
                random_length_probability=getattr(args, "random_length_probability", 0.0),
                t_sampling=getattr(args, "train_t_sampling", "uniform"),
                complementary_masking=getattr(args, "complementary_masking", False),
                seed=args.seed,  # masks depend on seed and batch only: exact resumes, any number of workers
            )
            if getattr(args, "masking", None) is not None:  # else the collator's default (exact for blocks)
                options["masking"] = args.masking
            block_size = getattr(model.config, "block_size", None)
            in_order = getattr(args, "in_order_probability", 0.0)
            if block_size is not None:  # block diffusion: one diffusion time per block
                return DataCollatorForBlockDiffusion(
                    **options,
                    block_size=block_size,
                    shared_clean_copy=getattr(args, "shared_clean_copy", True),
                    in_order_probability=in_order,
                )
            in_order_end = getattr(args, "in_order_probability_end", None)
            if in_order or in_order_end is not None:
                raise ValueError(
                    f"`in_order_probability` is for block models (`--block_size`); this model has full attention "
                    f"(block_size=None), got in_order_probability={in_order!r}, in_order_probability_end="
                    f"{in_order_end!r}."
                )
            return DataCollatorForMaskedDiffusion(**options)
        if is_sft:  # prompt labels are already -100; pad labels with -100 too
            return DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)
        return DataCollatorForLanguageModeling(tokenizer, mlm=False)

    @staticmethod
    def _sample_callback(args, tokenizer, eval_dataset, is_masked_diffusion):
        count = getattr(args, "num_sample_generations", 0)
        if not count or tokenizer is None:
            return None
        if args.sample_prompts:
            prompts = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in args.sample_prompts[:count]]
        elif eval_dataset is not None and hasattr(eval_dataset, "__getitem__") and hasattr(eval_dataset, "__len__"):
            rows = [eval_dataset[i] for i in range(min(count, len(eval_dataset)))]
            prompts = [_prompt_of(row, args.sample_prompt_length) for row in rows]
        else:
            return None
        return SampleGenerationCallback(
            prompts,
            tokenizer,
            seed=args.eval_seed,
            generation_config=None if is_masked_diffusion else _causal_lm_samples(args),
        )

    # ----------------------------------------------------------------------------------------------------------
    # evaluation

    def get_eval_dataloader(self, eval_dataset=None):
        """Evaluation batches are collated without masking: `prediction_step` draws its own, seeded masks."""
        collator = self.data_collator
        if self.is_masked_diffusion and isinstance(collator, DataCollatorForMaskedDiffusion):
            self.data_collator = dataclasses.replace(collator, mask=False, random_length_probability=0.0)
        try:
            return super().get_eval_dataloader(eval_dataset)
        finally:
            self.data_collator = collator

    def evaluation_loop(
        self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix="eval"
    ):
        # Every evaluation restarts the same random stream, so the bound moves only when the model does.
        seed = getattr(self.args, "eval_seed", 1234) + 7919 * self.args.process_index
        self._elbo_generator = torch.Generator().manual_seed(seed)
        self._in_order_totals = torch.zeros(2, dtype=torch.float64) if self._scores_in_order() else None
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        loss = output.metrics.get(f"{metric_key_prefix}_loss")
        if loss is not None:
            name = "perplexity_bound" if self.is_masked_diffusion else "perplexity"
            output.metrics[f"{metric_key_prefix}_{name}"] = math.exp(min(loss, 700.0))
        if self._in_order_totals is not None:  # (NLL sum, token count) over every process's batches
            nll, count = self.accelerator.reduce(self._in_order_totals.to(self.args.device), "sum").tolist()
            if count:
                output.metrics[f"{metric_key_prefix}_in_order_perplexity"] = math.exp(min(nll / count, 700.0))
            self._in_order_totals = None
        return output

    def _scores_in_order(self) -> bool:
        """`eval_in_order` on a block model (a full-attention model would take one forward per position)."""
        model = self.accelerator.unwrap_model(self.model)
        return (
            self.is_masked_diffusion
            and getattr(self.args, "eval_in_order", False)
            and getattr(model.config, "block_size", None) is not None
        )

    def _save(self, output_dir=None, state_dict=None):
        """The Trainer's save, plus a tokenizer config that transformers 4.x also reads (checkpoints included).
        Written into a staging folder first, so a failed save (disk full) leaves no half-written file behind."""
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:  # other ranks only join collectives; the main process writes
            return super()._save(output_dir, state_dict=state_dict)
        with staged_folder(output_dir) as staging:
            super()._save(staging, state_dict=state_dict)
            make_tokenizer_config_portable(staging)

    def _save_checkpoint(self, model, trial):
        """The Trainer's checkpoint; one that fails part-way (disk full) is removed and reported in one line."""
        folder = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        with removing_partial_checkpoint(folder, is_main_process=self.args.should_save):
            super()._save_checkpoint(model, trial)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        if not self.is_masked_diffusion:
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
        inputs = self._prepare_inputs(inputs)
        input_ids, scored_mask = _clean_ids_and_scored(inputs)  # (batch, seq) each
        attention_mask = inputs.get("attention_mask")
        with self.compute_loss_context_manager():
            nll = elbo_nll(
                model,
                input_ids,
                attention_mask,
                scored_mask,
                num_samples=getattr(self.args, "eval_num_t_samples", 4),
                t_sampling=getattr(self.args, "eval_t_sampling", "stratified"),
                eps=getattr(self.args, "mask_eps", 1e-3),
                mask_token_id=self.accelerator.unwrap_model(model).config.mask_token_id,
                generator=self._elbo_generator or torch.Generator().manual_seed(self.args.eval_seed),
            )  # (batch,) nats per sequence
            if self._in_order_totals is not None:
                # the tokens an autoregressive perplexity scores: no row's first real token (nothing predicts it)
                real = torch.ones_like(input_ids) if attention_mask is None else attention_mask.long()
                in_order = scored_mask & (real.cumsum(dim=-1) > 1)  # (batch, seq)
                unwrapped = self.accelerator.unwrap_model(model)
                in_order_nll_sum = in_order_nll(
                    unwrapped, input_ids, attention_mask, in_order, unwrapped.config.mask_token_id
                ).sum()
                self._in_order_totals += torch.tensor(
                    [float(in_order_nll_sum), float(in_order.sum())], dtype=torch.float64
                )
        loss = nll.sum() / scored_mask.sum().clamp(min=1)  # nats per scored token in this batch
        return loss.detach(), None, None


def fit_generation_config(model, args) -> None:
    """
    Makes the model's saved generation defaults (what `llada-generate` uses) the `sample_*` settings of the
    evaluation samples, shrunk so that a prompt of `sample_prompt_length` tokens plus the generation fits the
    model's positions. [`LLaDATrainer`] calls it for LLaDA models.
    """
    config = getattr(model, "generation_config", None)
    if config is None or not is_masked_diffusion_model(model):
        return
    room = max(1, model.config.max_position_embeddings - args.sample_prompt_length)
    config.max_new_tokens, config.steps, config.block_length = fit_generation_length(
        args.sample_max_new_tokens, args.sample_steps, sample_block_length(model, args), room
    )
    config.temperature = args.sample_temperature
    config.remasking = args.sample_remasking
    config.top_p = args.sample_top_p
    config.top_k = args.sample_top_k


def _causal_lm_samples(args) -> GenerationConfig:
    """The sample settings for a causal LM (the autoregressive baseline), whose own generation config is left as is."""
    return GenerationConfig(
        max_new_tokens=args.sample_max_new_tokens,
        do_sample=args.sample_temperature > 0,
        temperature=args.sample_temperature or None,
        top_k=args.sample_top_k,
        top_p=args.sample_top_p,
    )


def sample_block_length(model, args) -> Optional[int]:
    """`--sample_block_length`, or for a block diffusion model its `block_size` unless the option divides it (a block
    model decodes block by block; smaller sampling blocks split each block)."""
    block_length = args.sample_block_length
    block_size = getattr(getattr(model, "config", None), "block_size", None)
    if block_size is not None and (not block_length or block_size % block_length):
        return block_size
    return block_length


def _clean_ids_and_scored(inputs: dict):
    """The clean tokens of an evaluation batch and the positions to score.

    Clean batches (our collator with `mask=False`) carry labels only in SFT mode (-100 on the prompt); masked
    batches (any collator) hold the clean token in `labels` wherever `input_ids` was masked.
    """
    input_ids = inputs["input_ids"]
    attention_mask = inputs.get("attention_mask", torch.ones_like(input_ids)).bool()
    labels = inputs.get("labels")
    if labels is None:
        return input_ids, attention_mask
    if "p_mask" in inputs:  # already masked: undo it
        return torch.where(labels != -100, labels, input_ids), attention_mask
    return input_ids, (labels != -100) & attention_mask


def _prompt_of(row: dict, length: int) -> list:
    """The prompt of an SFT row (labels -100), or the first `length` tokens of a pre-training block."""
    ids = list(row["input_ids"])
    if "labels" in row:
        prompt_length = sum(1 for label in row["labels"] if label == -100)
        return ids[:prompt_length] or ids[:length]
    return ids[:length]


__all__ = [
    "LLaDATrainer",
    "LLaDATrainingArguments",
    "fit_generation_config",
]
