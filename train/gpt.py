"""Train a GPT:  python -m train.gpt [--flags]  (--help lists them).

Two presets (train/presets.py): 'course' (the course's GPT, for a GPU) and 'cpu' (a smaller GPT that
reaches a validation loss below 1.65 on Sherlock Holmes in about 10 minutes on two CPU cores). The
default 'auto' picks 'course' when a CUDA GPU is used and 'cpu' otherwise; flags override preset values.
"""
import sys
from dataclasses import make_dataclass

from models.gpt import GPTConfig
from train.cli import apply_preset, cli_main, fields_from, option, parse_config, resolve_device
from train.loop import TrainConfig
from train.presets import PRESETS
from train.run import run_training

# The model's fields come from GPTConfig (defaults, help, choices); vocab_size comes from the data and
# block_size is the loop's (TrainConfig), which the model gets too.
GPTTrainConfig = make_dataclass("GPTTrainConfig", [
    ("preset", str, option("auto", "hyperparameter preset: course (GPU), cpu, or auto (course on CUDA, else cpu)")),
    ("out_dir", str, option("out/gpt", "folder for last.ckpt, best.ckpt, log.jsonl and loss.png")),
    *fields_from(GPTConfig, exclude=("vocab_size", "block_size")),
], bases=(TrainConfig,), namespace={
    "__doc__": 'Train a GPT on a text file (default: "The Adventures of Sherlock Holmes").',
    "__module__": __name__})


def main(argv=None, on_step=None):
    cfg, given = parse_config(GPTTrainConfig, argv, presets=PRESETS)
    preset = cfg.preset
    if not cfg.resume:
        if preset == "auto":
            preset = "course" if resolve_device(cfg.device).startswith("cuda") else "cpu"
        cfg = apply_preset(cfg, PRESETS, preset, given)
    return run_training(cfg, "gpt", given, on_step=on_step)


if __name__ == "__main__":
    sys.exit(cli_main(main))
