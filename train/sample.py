"""Generate text from a checkpoint.

    python -m train.sample --checkpoint out/gpt/best.ckpt --prompt "Holmes" --max_new_tokens 300

The pieces are importable: train.checkpoint.load_checkpoint_model(path, device='auto') -> (model,
tokenizer, info), and models.sampling.generate_stream(model, tokenizer, prompt, ...), which yields the
text piece by piece as tokens are sampled. GenerationConfig holds the flags chat shares.
"""
import math
import os
import sys
from dataclasses import dataclass

from models.sampling import generate_stream
from train.checkpoint import load_checkpoint_model
from train.cli import check_seed, cli_main, option, parse_config
from train.errors import UserError

MAX_NEW_TOKENS = 1_000_000  # a million tokens is hours of generation: more is a typo


@dataclass
class GenerationConfig:
    """What every program that generates from a checkpoint takes (sample, chat)."""
    checkpoint: str = option("out/gpt/best.ckpt", "checkpoint file (last.ckpt or best.ckpt)")
    max_new_tokens: int = option(500, "tokens to generate")
    temperature: float = option(1.0, "softmax temperature (0: always the most likely token)")
    top_k: int = option(0, "sample among the k most likely tokens only (0: all)")
    seed: int = option(-1, "random seed (-1: a random one)")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    unknown: str = option("error", "what to do with prompt characters outside the vocabulary",
                          choices=["error", "skip"])


@dataclass
class SampleConfig(GenerationConfig):
    """Generate text from a checkpoint written by train.bigram or train.gpt."""
    prompt: str = option("\n", "text to continue")


def check_generation_config(cfg):
    """Refuse, naming the flag, what the sampler cannot use (before the checkpoint is loaded).
    --top_k larger than the vocabulary means all tokens, as 0 does."""
    if not (math.isfinite(cfg.temperature) and cfg.temperature >= 0):
        raise UserError(f"--temperature must be a finite number >= 0 (0: always the most likely token), "
                        f"got {cfg.temperature}")
    if not 0 <= cfg.max_new_tokens <= MAX_NEW_TOKENS:
        raise UserError(f"--max_new_tokens must be between 0 and {MAX_NEW_TOKENS:,}, got {cfg.max_new_tokens}")
    if cfg.top_k < 0:
        raise UserError(f"--top_k must be >= 0 (0: all tokens), got {cfg.top_k}")
    check_seed(cfg.seed)


def stdout_closed():
    """After a BrokenPipeError (`... | head`): send what is still buffered nowhere, so that exiting prints
    nothing (what Python's documentation of SIGPIPE recommends)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (a test's capture): replace the object
        sys.stdout = open(os.devnull, "w")


def main(argv=None):
    cfg, _ = parse_config(SampleConfig, argv)
    check_generation_config(cfg)
    try:
        generate(cfg)
    except BrokenPipeError:  # the reader went away (`| head -c 5`): a normal end, not an error
        stdout_closed()


def generate(cfg):
    model, tokenizer, info = load_checkpoint_model(cfg.checkpoint, cfg.device)
    print(f"# {info['model_type']} model, {info['num_params']:,} parameters, step {info['step']}, "
          f"device {info['device']}", file=sys.stderr)
    tokenizer.encode(cfg.prompt, unknown=cfg.unknown)  # unknown characters: the error comes before any output
    sys.stdout.write(cfg.prompt)
    seed = cfg.seed if cfg.seed >= 0 else None
    for piece in generate_stream(model, tokenizer, cfg.prompt, cfg.max_new_tokens, cfg.temperature,
                                 cfg.top_k or None, seed, cfg.unknown):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")


if __name__ == "__main__":
    sys.exit(cli_main(main))
