"""What every program of train/ shares around its work: a command line generated from a config
dataclass (fields of its own, or taken from a model's config with `fields_from`), presets, device
resolution, and `cli_main`, the one error boundary.

    @dataclass
    class MyConfig:
        steps: int = option(10, "how many steps")

    def main(argv=None):
        cfg, given = parse_config(MyConfig, argv)    # --steps N, --help with the defaults
        ...

    if __name__ == "__main__":
        sys.exit(cli_main(main))
"""
import argparse
import dataclasses
import sys
from dataclasses import field

from tensorlite import backend
from tensorlite.serialization import CheckpointError as FileError
from train.errors import DeviceError, UserError


def option(default, help, **kw):
    """A config field with its --help text (and argparse `choices=` if given)."""
    return field(default=default, metadata={"help": help, **kw})


def fields_from(config_cls, exclude=()):
    """The fields of another config dataclass (defaults and help texts), as `dataclasses.make_dataclass`
    takes them: how a training config takes a model's hyperparameters from the model's config instead of
    repeating them."""
    return [(f.name, f.type, field(default=f.default, metadata=f.metadata))
            for f in dataclasses.fields(config_cls) if f.name not in exclude]


def build_parser(config_cls, description=None, presets=None):
    """An argparse parser with one --flag per dataclass field; bools get --flag / --no-flag."""
    parser = argparse.ArgumentParser(description=description or config_cls.__doc__,
                                     argument_default=argparse.SUPPRESS)
    defaults = config_cls()
    for f in dataclasses.fields(config_cls):
        kw = {"help": f"{f.metadata.get('help', '')} (default: {getattr(defaults, f.name)!r})"}
        if f.name == "preset" and presets:
            kw["choices"] = ["auto", *presets]
        elif "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        kind = type(getattr(defaults, f.name))
        if kind is bool:
            parser.add_argument(f"--{f.name}", action=argparse.BooleanOptionalAction, **kw)
        else:
            parser.add_argument(f"--{f.name}", type=kind, metavar=f.name.upper(), **kw)
    return parser


def parse_config(config_cls, argv=None, presets=None, description=None):
    """(config, given): defaults, then the preset's values, then the flags given; `given` names those flags."""
    parser = build_parser(config_cls, description, presets)
    given = vars(parser.parse_args(argv))
    return config_cls(**given), set(given)


def apply_preset(cfg, presets, name, given):
    """The config with a preset's values, except for the fields set explicitly on the command line."""
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}: expected one of {sorted(presets)}")
    values = {k: v for k, v in presets[name].items() if k not in given}
    return dataclasses.replace(cfg, preset=name, **values)


def resolve_device(name):
    """'auto' -> 'cuda:0' when CuPy sees a GPU, else 'cpu'; otherwise the backend's normalized name."""
    if name == "auto":
        return "cuda:0" if backend.cuda_is_available() else "cpu"
    try:
        return backend.normalize_device(name)
    except (RuntimeError, ValueError) as exc:
        raise DeviceError(str(exc)) from None


def cli_main(fn, argv=None):
    """Run an entry point: an error the user can act on -> one 'error:' line on stderr and its exit code
    (2, or 1 for a diverged run); Ctrl-C -> exit 130. Anything else is a bug and keeps its traceback."""
    try:
        fn(argv)
    except (UserError, FileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        return 130
    return 0
