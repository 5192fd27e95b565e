"""Models built only from tensorlite.nn layers, and the registry that names them.

Each model type has a name (what a checkpoint records), a config dataclass (its hyperparameters, checked
in one place) and a model class built from that config. Training, sampling, chat, the web page and the
benchmarks all make models through here:

    config = config_from("gpt", {"vocab_size": 65, "n_layer": 4})   # other fields: the defaults
    model = build_model("gpt", config)                             # or the config dict of a checkpoint
"""
import dataclasses
from dataclasses import dataclass

from models.bigram import BigramConfig, BigramLanguageModel
from models.gpt import GPT, GPTConfig


@dataclass(frozen=True)
class ModelType:
    config: type   # the config dataclass
    model: type    # the nn.Module, built as model(config)


MODELS = {
    "bigram": ModelType(BigramConfig, BigramLanguageModel),
    "gpt": ModelType(GPTConfig, GPT),
}


def model_type(name):
    """The registry entry of `name`; KeyError naming the known types otherwise."""
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise KeyError(f"unknown model type {name!r}: expected one of {tuple(MODELS)}") from None


def config_from(name, values):
    """The config of model type `name` from a mapping: each field `values` has, the default for the rest.
    Other keys are ignored, so a training config's fields (or a benchmark's sizes) can be passed as they are."""
    config_cls = model_type(name).config
    return config_cls(**{f.name: values[f.name] for f in dataclasses.fields(config_cls) if f.name in values})


def build_model(name, config):
    """A fresh model of type `name` from its config: the dataclass, or the dict a checkpoint holds."""
    entry = model_type(name)
    if isinstance(config, dict):
        config = entry.config(**config)
    if not isinstance(config, entry.config):
        raise TypeError(f"a {name!r} model needs a {entry.config.__name__}, got {type(config).__name__}")
    return entry.model(config)
