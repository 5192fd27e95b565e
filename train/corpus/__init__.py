"""Corpus preparation: a large text corpus -> a dataset directory that training memory-maps.

    readers.py   finding the source files (units) of a corpus, splitting them train/val, and streaming
                 their documents: OpenWebText's outer .tar subsets of .xz tars, plain .xz text, .txt files
    sinks.py     where encoded text goes: TokenFile appends the ids of batches of text to a file
    work.py      what is done with one source file (count characters, count pre-tokens, encode it into
                 its part file), whole or not at all, in a worker process or the main one
    pool.py      the worker processes (--workers): results in file order, so the output never depends on
                 how many there are; they stop on Ctrl-C and when the main process is killed
    dataset.py   the format on disk (train.bin, val.bin, meta.json): its writer helpers and its loader
                 `is_prepared` / `load_prepared`
    build.py     `prepare(...)`: the two passes that tie them together

`python -m train.prepare` is the command line for `prepare`; `train.data.load_corpus` reads the result.
"""
from train.corpus.build import prepare
from train.corpus.dataset import DatasetError, is_prepared, load_prepared, token_dtype
from train.corpus.readers import PrepareError, Unit, find_units, read_document, split_units

__all__ = ["prepare", "DatasetError", "is_prepared", "load_prepared", "token_dtype", "PrepareError", "Unit",
           "find_units", "read_document", "split_units"]
