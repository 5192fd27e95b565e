"""Train the character bigram model:  python -m train.bigram [--flags]  (--help lists them)."""
import sys
from dataclasses import dataclass

from train.cli import cli_main, option, parse_config
from train.loop import TrainConfig
from train.run import run_training


@dataclass
class BigramTrainConfig(TrainConfig):
    """Train a bigram language model (the course's bigram.py hyperparameters by default)."""
    out_dir: str = option("out/bigram", "folder for last.ckpt, best.ckpt, log.jsonl and loss.png")


def main(argv=None, on_step=None):
    cfg, given = parse_config(BigramTrainConfig, argv)
    return run_training(cfg, "bigram", given, on_step=on_step)


if __name__ == "__main__":
    sys.exit(cli_main(main))
