"""Turn a large text corpus into token files that training memory-maps: train.bin, val.bin, meta.json.

    python -m train.prepare openwebtext --src DIR --out DIR [--tokenizer char|bpe] [--vocab_size N] ...
    python -m train.prepare text --src FILE_OR_DIR --out DIR ...

The work is done by the package train.corpus (readers, sinks, the dataset format, the pipeline); this is
its command line. The dataset is written into a temporary directory next to --out and renamed into place
at the very end, so an interrupted run leaves --out as it was.
"""
import argparse
import sys

from train.cli import cli_main
from train.corpus import DatasetError, PrepareError, is_prepared, load_prepared, prepare

__all__ = ["main", "prepare", "is_prepared", "load_prepared", "PrepareError", "DatasetError"]


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m train.prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", choices=["openwebtext", "text"],
                        help="openwebtext: .xz / .tar archives; text: a UTF-8 file or a folder of .txt")
    parser.add_argument("--src", required=True, help="the corpus: a directory (or a single file)")
    parser.add_argument("--out", required=True, help="directory to create with train.bin, val.bin, meta.json")
    parser.add_argument("--tokenizer", choices=["char", "bpe"], default="char")
    parser.add_argument("--vocab_size", type=int, default=8192, help="BPE: total vocabulary, incl. 256 bytes + EOT")
    parser.add_argument("--bpe_sample_bytes", type=int, default=20_000_000, help="BPE: text to train on")
    parser.add_argument("--min_char_count", type=int, default=None,
                        help="char: rarer characters become one unknown token (default: 1 for text, "
                             "1000 for openwebtext)")
    parser.add_argument("--val_fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--workers", type=int, default=None,
                        help="processes that read and encode, one source file at a time each (default: one per "
                             "CPU core); the output is the same whatever the number")
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    return parser


def main(argv=None):
    """Parse the flags and prepare; errors propagate to cli_main, which prints them as one line."""
    args = build_parser().parse_args(argv)
    if args.min_char_count is None:
        # a web corpus carries a long tail of rare characters: 1000 keeps them out of the vocabulary
        args.min_char_count = 1000 if args.corpus == "openwebtext" else 1
    try:
        prepare(args.corpus, args.src, args.out, tokenizer=args.tokenizer, vocab_size=args.vocab_size,
                min_char_count=args.min_char_count, bpe_sample_bytes=args.bpe_sample_bytes,
                val_fraction=args.val_fraction, seed=args.seed, force=args.force, quiet=args.quiet,
                workers=args.workers)
    except KeyboardInterrupt as exc:
        print("interrupted: nothing was written to --out", file=sys.stderr)
        exc.reported = True  # cli_main says nothing more
        raise


if __name__ == "__main__":
    sys.exit(cli_main(main))
