"""Train the character bigram model:  python -m train.bigram [--flags]  (--help lists them)."""
import sys
from dataclasses import dataclass

from models.bigram import BigramLanguageModel
from train.loop import TrainConfig, _arg, cli_main, parse_config, run_training


@dataclass
class BigramTrainConfig(TrainConfig):
    """Train a bigram language model (the course's bigram.py hyperparameters by default)."""
    out_dir: str = _arg("out/bigram", "folder for last.ckpt, best.ckpt and log.jsonl")


def make_model(cfg, vocab_size):
    return BigramLanguageModel(vocab_size), {"vocab_size": vocab_size}


def main(argv=None, on_step=None):
    cfg, given = parse_config(BigramTrainConfig, argv)
    return run_training(cfg, "bigram", make_model, given, on_step=on_step)


if __name__ == "__main__":
    sys.exit(cli_main(main))
