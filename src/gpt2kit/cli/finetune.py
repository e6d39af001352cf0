"""`gpt2kit finetune`: train on text files, resume exactly, write checkpoints and a final model."""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from pathlib import Path

from gpt2kit.config import ALIASES, PRESETS
from gpt2kit.summarization.recipes import DEFAULT_RECIPE, RECIPES
from gpt2kit.training import TrainConfig, Trainer, TrainingInterrupted
from gpt2kit.training.config import CLASS_WEIGHTS, PRECISIONS, SCHEDULES, TASKS


def epochs(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated epoch numbers, got {text!r}") from None


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune", help="fine-tune (or pretrain) on text files, with exact resume",
        description="Train a GPT-2 on text: a file, a folder of files, .jsonl/.csv with a text column, or a "
                    "gpt2kit token file. Writes checkpoints, metrics.jsonl, loss.png and the final model to --out.")
    io = p.add_argument_group("model and data")
    io.add_argument("--data", type=Path, required=True, metavar="PATH",
                    help="training text (file or folder), a token file, a shard folder of `gpt2kit prepare`, "
                         "article/summary records with --task summarization, or labelled text with --task classify "
                         "(.csv, .jsonl, or a folder with a sub-folder of text files per class)")
    io.add_argument("--out", type=Path, required=True, metavar="DIR", help="run folder")
    start = io.add_mutually_exclusive_group(required=True)
    start.add_argument("--model", metavar="PATH",
                       help="model to fine-tune (any format gpt2kit reads, a published name, or `default`)")
    start.add_argument("--from-scratch", metavar="CONFIG",
                       help=f"pretrain from random weights of a preset: {', '.join([*PRESETS, *ALIASES])}")
    io.add_argument("--seq-len", type=int, default=None, metavar="N",
                    help="tokens per training window (default: the model's context)")
    io.add_argument("--val-fraction", type=float, default=0.0, metavar="F",
                    help="hold out the last F of the data for validation (with --task classify, F of the examples "
                         "drawn by --seed); default 0")
    io.add_argument("--val-file", type=Path, default=None, metavar="PATH",
                    help="validation data instead, in the form of --data")
    io.add_argument("--text-column", default="text", metavar="NAME", help="field of .jsonl / .csv rows (default text)")
    summ = p.add_argument_group("summarization (--task summarization)")
    summ.add_argument("--task", default="lm", choices=TASKS,
                      help="lm (default): windows of text; summarization: article/summary records (CNN/DailyMail "
                           ".story folders, 3.0.0 .jsonl/.csv/.parquet tables, MindSpore article<TAB>summary files); "
                           "classify: labelled text, trained into a classifier (GPT2ForSequenceClassification)")
    summ.add_argument("--recipe", default=DEFAULT_RECIPE, choices=[n for n, r in RECIPES.items() if r.trainable],
                      help="how an example is built: mindspore (default; article + ' TL;DR: ' + all highlights, "
                           "newlines as spaces) or tf2 (article + '\\nTL;DR:\\n' + one random highlight an epoch)")
    summ.add_argument("--loss-on", default="target", choices=("target", "all"),
                      help="target (default): only the summary's tokens count in the loss; all: every token")
    summ.add_argument("--source-column", default="article", metavar="NAME",
                      help="article column of .jsonl / .csv / .parquet tables (default article)")
    summ.add_argument("--target-column", default="highlights", metavar="NAME",
                      help="summary column, one sentence a line (default highlights)")
    summ.add_argument("--limit", type=int, default=None, metavar="N", help="train on the first N articles only")
    cls = p.add_argument_group("classification (--task classify)")
    cls.add_argument("--label-column", default="label", metavar="NAME",
                     help="class field of .jsonl / .csv rows (default label; the text is --text-column); a folder "
                          "of labelled text names each class by its sub-folder")
    cls.add_argument("--pooling", default="last", choices=("last", "mean"),
                     help="what the head reads: last (default): the last token's hidden state, as transformers' "
                          "GPT2ForSequenceClassification; mean: the mean over the text's tokens")
    cls.add_argument("--class-weights", default="none", choices=CLASS_WEIGHTS,
                     help="none (default), or balanced: weigh each class's examples by n / (classes x its count), "
                          "so that rare classes count as much as common ones")
    io.add_argument("--errors", default="strict", choices=("strict", "replace"),
                    help="text that is not UTF-8: strict (refuse, default) or replace (U+FFFD)")
    io.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                    help="where tokenized data is cached (default ~/.cache/gpt2kit/tokens)")

    opt = p.add_argument_group("optimisation")
    opt.add_argument("--batch-size", type=int, default=1, metavar="N", help="windows per micro-batch (default 1)")
    opt.add_argument("--grad-accum", type=int, default=1, metavar="N",
                     help="micro-batches per optimizer step (default 1)")
    opt.add_argument("--max-steps", type=int, default=None, metavar="N",
                     help="optimizer steps to run (may be raised on --resume: the learning-rate schedule then "
                          "follows the new total)")
    opt.add_argument("--schedule-steps", type=int, default=None, metavar="N",
                     help="plan the learning-rate schedule for N steps instead of the run's own length (stop "
                          "early, at --max-steps, on the schedule of a longer run; nanoGPT's lr_decay_iters)")
    opt.add_argument("--num-epochs", type=int, default=None, metavar="N", help="epochs to run (with --steps-per-epoch)")
    opt.add_argument("--steps-per-epoch", type=int, default=None, metavar="N",
                     help="optimizer steps per epoch (default: training tokens / tokens per step)")
    opt.add_argument("--base-lr", "--lr", type=float, default=1e-4, metavar="LR",
                     help="peak learning rate (default 1e-4)")
    opt.add_argument("--min-lr", type=float, default=0.0, metavar="LR", help="final learning rate of linear/cosine")
    opt.add_argument("--schedule", default="constant", choices=SCHEDULES,
                     help="learning-rate schedule: constant, linear or cosine (after warmup), or step decay")
    opt.add_argument("--warmup-steps", type=int, default=0, metavar="N", help="linear warmup steps (default 0)")
    opt.add_argument("--decay-epochs", type=epochs, default=[], metavar="E,E",
                     help="step schedule: multiply the learning rate by --decay-factor at these epochs, e.g. 4,5")
    opt.add_argument("--decay-factor", type=float, default=0.1, metavar="F", help="step schedule factor (default 0.1)")
    opt.add_argument("--weight-decay", type=float, default=0.01, metavar="W",
                     help="AdamW weight decay, on matrices only (default 0.01)")
    opt.add_argument("--adam-state", default="fp32", choices=("fp32", "bf16"),
                     help="dtype of AdamW's two moment estimates: fp32 (default) or bf16 (half their memory)")
    opt.add_argument("--grad-clip", type=float, default=1.0, metavar="NORM",
                     help="clip the gradient norm; 0 disables (default 1.0)")
    opt.add_argument("--seed", type=int, default=0, metavar="S", help="seed of initialisation and data order")
    opt.add_argument("--precision", default="fp32", choices=PRECISIONS,
                     help="fp32; bf16 autocast (CPU and CUDA); fp16 autocast with a gradient scaler (CUDA)")
    opt.add_argument("--grad-checkpointing", action="store_true",
                     help="recompute activations in the backward pass: less memory, more time")
    opt.add_argument("--dropout", type=float, default=None, metavar="P",
                     help="dropout on embeddings, attention weights and residuals while training (default: the "
                          "model's, 0.1 for GPT-2; 0 is common for fine-tuning and faster)")
    opt.add_argument("--freeze-layers", type=int, default=0, metavar="N",
                     help="keep the embeddings and the first N blocks fixed")
    opt.add_argument("--lora-rank", type=int, default=0, metavar="R",
                     help="train rank-R LoRA adapters instead of the weights (merged into them on save)")
    opt.add_argument("--lora-alpha", type=float, default=None, metavar="A", help="LoRA scale numerator (default 2R)")
    opt.add_argument("--device", default="auto", metavar="DEV", help="cpu, cuda, cuda:N or auto (default)")

    dist = p.add_argument_group("several processes (start with `torchrun --nproc-per-node N -m gpt2kit finetune ...`)")
    dist.add_argument("--fsdp", action="store_true",
                      help="shard weights, gradients and optimizer state over the ranks (FSDP2) instead of "
                           "replicating the model on each (DDP, the default under torchrun)")
    dist.add_argument("--cpu-offload", action="store_true",
                      help="with --fsdp on CUDA: keep the shards in host memory between uses")
    dist.add_argument("--dist-timeout", type=float, default=600.0, metavar="SECONDS",
                      help="how long a rank waits for the others (a dead or hung rank) before the run stops with an "
                           "error; longer than the slowest checkpoint save or evaluation (default 600)")

    run = p.add_argument_group("during the run")
    run.add_argument("--eval-every", type=int, default=0, metavar="N",
                     help="validation loss and perplexity every N steps (default: at the end)")
    run.add_argument("--eval-batches", type=int, default=20, metavar="N", help="batches per evaluation (default 20)")
    run.add_argument("--sample-every", type=int, default=0, metavar="N", help="print a generated sample every N steps")
    run.add_argument("--sample-prompt", default="", metavar="TEXT", help="prompt of those samples (default: none)")
    run.add_argument("--sample-tokens", type=int, default=64, metavar="N", help="length of those samples")
    run.add_argument("--save-every", type=int, default=0, metavar="N", help="checkpoint every N steps (and at the end)")
    run.add_argument("--keep-last", type=int, default=2, metavar="K", help="checkpoints to keep (default 2)")
    run.add_argument("--early-stopping", dest="early_stopping_patience", type=int, default=0, metavar="N",
                     help="stop after N evaluations without a better validation loss; 0 disables")
    run.add_argument("--resume", nargs="?", const="latest", default=None, metavar="CHECKPOINT",
                     help="continue the run in --out from its latest checkpoint, or from the one given; Ctrl-C "
                          "saves a checkpoint and prints the command that resumes")
    run.add_argument("--overwrite", action="store_true", help="start over in an --out that holds another run")
    p.set_defaults(run=run_finetune)


def run_finetune(args: argparse.Namespace) -> int:
    fields = {k: v for k, v in vars(args).items() if k not in ("run", "command", "command_line")}
    config = TrainConfig(**fields)
    trainer = Trainer(config)
    try:
        return _run(trainer, config, args)
    finally:
        trainer.close()


def _run(trainer: Trainer, config: TrainConfig, args: argparse.Namespace) -> int:
    main = trainer.world.is_main  # with several ranks, rank 0 speaks for the run
    if main:
        print(trainer.summary(), file=sys.stderr)
    start = trainer.step
    try:
        result = trainer.run()
    except TrainingInterrupted as stop:
        if not main:
            return 130
        print(f"gpt2kit: interrupted at step {stop.step:,} of {stop.total_steps:,}; checkpoint saved in "
              f"{stop.checkpoint}, loss curve in {config.out / 'loss.png'}\ncontinue the run with:\n  "
              f"{resume_command(getattr(args, 'command_line', ['gpt2kit', 'finetune']))}", file=sys.stderr)
        return 130
    if not main:
        return 0
    if result.new_steps == 0 and config.resume:
        if result.stopped_early:
            why = (f"stopped early at step {result.steps} (no validation improvement in "
                   f"{config.early_stopping_patience} evaluations; a larger --early-stopping continues it)")
        else:
            limit = (f"--max-steps {config.max_steps}" if config.max_steps == trainer.total_steps
                     else f"--num-epochs {config.num_epochs} of {trainer.steps_per_epoch} steps")
            why = f"already finished at step {result.steps} ({limit}; raise it to train further)"
        print(f"{why}; model in {result.model_dir}")
        return 0
    done = (f"trained {result.steps} step{'s' * (result.steps != 1)}" if start == 0
            else f"trained steps {start + 1} to {result.steps}")
    val = ""
    if result.val_loss is not None and config.task == "classify":  # a perplexity of classes means nothing
        val = (f", validation loss {result.val_loss:.4f} (cross-entropy; `gpt2kit eval classify` gives accuracy "
               "and F1)")
    elif result.val_loss is not None:
        val = f", validation loss {result.val_loss:.4f} (perplexity {math.exp(min(result.val_loss, 50)):.2f})"
    print(f"{done}: loss {result.train_loss:.4f}{val}; model in {result.model_dir}")
    return 0


def resume_command(words: list[str]) -> str:
    """The command line that continues this run: the same words, with --resume (its latest
    checkpoint) in place of any --resume CHECKPOINT, and without --overwrite."""
    kept, i = [], 0
    while i < len(words):
        word = words[i]
        i += 1
        if word == "--resume" and i < len(words) and not words[i].startswith("-"):
            i += 1  # the checkpoint it named
        elif word != "--overwrite" and word != "--resume" and not word.startswith("--resume="):
            kept.append(word)
    return shlex.join([*kept, "--resume"])
