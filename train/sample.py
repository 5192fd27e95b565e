"""Generate text from a checkpoint.

    python -m train.sample --checkpoint out/gpt/best.ckpt --prompt "Holmes" --max_new_tokens 300

The pieces are importable: train.checkpoint.load_checkpoint_model(path, device='auto') -> (model,
tokenizer, info), and models.sampling.generate_stream(model, tokenizer, prompt, ...), which yields the
text piece by piece as tokens are sampled. GenerationConfig holds the flags chat shares.
"""
import sys
from dataclasses import dataclass

from models.sampling import generate_stream
from train.checkpoint import load_checkpoint_model
from train.cli import cli_main, option, parse_config


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


def main(argv=None):
    cfg, _ = parse_config(SampleConfig, argv)
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
