"""Imported once by the fork server that worker processes are forked from (pool.py): everything every
worker needs is made here, before the forks, so each worker inherits it instead of making its own (the
imports, and the character-class table of the pre-tokenizer: together about half a second a worker)."""
from train.corpus import work  # noqa: F401
from train.pretokenize import char_classes

char_classes()
