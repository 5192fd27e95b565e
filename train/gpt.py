"""Train a GPT:  python -m train.gpt [--flags]  (--help lists them).

Two presets: 'course' (the course's GPT, for a GPU) and 'cpu' (a smaller GPT that reaches a
validation loss below 1.65 on Sherlock Holmes in about 10 minutes on two CPU cores). The default
'auto' picks 'course' when a CUDA GPU is used and 'cpu' otherwise; flags override preset values.
"""
import sys
from dataclasses import dataclass

from models.gpt import GPT, GPTConfig
from train.loop import TrainConfig, _arg, apply_preset, cli_main, parse_config, resolve_device, run_training

PRESETS = {
    "course": dict(batch_size=128, block_size=64, n_embd=384, n_layer=8, n_head=8, dropout=0.2,
                   learning_rate=3e-4, max_iters=3000, eval_interval=100, eval_iters=100,
                   weight_decay=0.01, beta2=0.999, grad_clip=0.0, warmup_iters=0, lr_decay=False),
    "cpu": dict(batch_size=32, block_size=64, n_embd=128, n_layer=4, n_head=4, dropout=0.0,
                learning_rate=2e-3, max_iters=4000, eval_interval=250, eval_iters=20,
                weight_decay=0.1, beta2=0.99, grad_clip=1.0, warmup_iters=100, lr_decay=True),
}


@dataclass
class GPTTrainConfig(TrainConfig):
    """Train a GPT on a text file (default: "The Adventures of Sherlock Holmes")."""
    preset: str = _arg("auto", "hyperparameter preset: course (GPU), cpu, or auto (course on CUDA, else cpu)")
    out_dir: str = _arg("out/gpt", "folder for last.ckpt, best.ckpt and log.jsonl")
    n_embd: int = _arg(384, "embedding width")
    n_layer: int = _arg(8, "transformer blocks")
    n_head: int = _arg(8, "attention heads per block (must divide n_embd)")
    dropout: float = _arg(0.2, "dropout probability")
    norm: str = _arg("post", "layer norm placement: post (the course's) or pre (GPT-2's)", choices=["post", "pre"])
    activation: str = _arg("relu", "MLP activation", choices=["relu", "gelu"])
    bias: bool = _arg(True, "biases in the linear layers")


def make_model(cfg, vocab_size):
    config = GPTConfig(vocab_size=vocab_size, block_size=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
                       n_head=cfg.n_head, dropout=cfg.dropout, norm=cfg.norm, activation=cfg.activation,
                       bias=cfg.bias)
    return GPT(config), config.to_dict()


def main(argv=None, on_step=None):
    cfg, given = parse_config(GPTTrainConfig, argv, presets=PRESETS)
    preset = cfg.preset
    if not cfg.resume:
        if preset == "auto":
            preset = "course" if resolve_device(cfg.device).startswith("cuda") else "cpu"
        cfg = apply_preset(cfg, PRESETS, preset, given)
    return run_training(cfg, "gpt", make_model, given, on_step=on_step)


if __name__ == "__main__":
    sys.exit(cli_main(main))
