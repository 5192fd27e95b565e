"""Generate text from a checkpoint.

    python -m train.sample --checkpoint out/gpt/best.ckpt --prompt "Holmes" --max_new_tokens 300

Also importable (the web app uses these):
    load_checkpoint_model(path, device='auto') -> (model, tokenizer, info)
    generate_stream(model, tokenizer, prompt, ...) yields text piece by piece as tokens are sampled.
"""
import sys
from dataclasses import dataclass

import tensorlite
from models.bigram import BigramLanguageModel
from models.gpt import GPT, GPTConfig
from models.sampling import generate_tokens
from train.loop import CheckpointError, _arg, cli_main, load_checkpoint, parse_config, resolve_device
from train.tokenizers import tokenizer_from_dict

MODEL_TYPES = ("bigram", "gpt")


def build_model(model_type, model_config):
    """A fresh model of a type named in a checkpoint, from its saved config dict."""
    if model_type == "bigram":
        return BigramLanguageModel(model_config["vocab_size"])
    if model_type == "gpt":
        return GPT(GPTConfig(**model_config))
    raise CheckpointError(f"unknown model type {model_type!r} in checkpoint: expected one of {MODEL_TYPES}")


def load_checkpoint_model(path, device="auto"):
    """(model in eval mode on `device`, tokenizer, info dict) from a checkpoint written by train.bigram/gpt."""
    device = resolve_device(device)
    ckpt = load_checkpoint(path, map_location=device)
    model_type = ckpt.get("model_type")
    model = build_model(model_type, ckpt["model_config"])
    model.load_state_dict(ckpt["model"])
    model.to(device)
    model.eval()
    tokenizer = tokenizer_from_dict(ckpt["tokenizer"])
    info = {"model_type": model_type, "config": dict(ckpt["model_config"]), "num_params": model.num_params(),
            "step": int(ckpt.get("step", 0)), "vocab_size": tokenizer.vocab_size,
            "best_val_loss": float(ckpt.get("best_val_loss", float("nan"))), "device": device, "path": str(path)}
    return model, tokenizer, info


def _context(model):
    config = getattr(model, "config", None)
    return getattr(config, "block_size", None) if config is not None else 1


def generate_stream(model, tokenizer, prompt, max_new_tokens=200, temperature=1.0, top_k=None, seed=None,
                    unknown="error"):
    """Yield the generated text piece by piece, one piece per sampled token (the prompt is not repeated).

    A prompt with characters outside the vocabulary raises UnknownCharacterError naming them, unless
    unknown='skip' drops them. An empty prompt starts from token 0. Decoding the whole continuation each
    time and yielding the new tail keeps multi-byte tokens whole.
    """
    if unknown not in ("error", "skip"):
        raise ValueError(f"unknown must be 'error' or 'skip', got {unknown!r}")
    if seed is not None:
        tensorlite.manual_seed(seed)
    ids = tokenizer.encode(prompt, unknown=unknown) or [0]
    device = next(iter(model.parameters())).device
    idx = tensorlite.tensor([ids], dtype=tensorlite.int64, device=device)
    new_ids, emitted = [], ""
    for nxt in generate_tokens(model, idx, max_new_tokens, temperature, top_k, context=_context(model)):
        new_ids.append(int(nxt.item()))
        text = tokenizer.decode(new_ids)
        if text.endswith("\ufffd") and len(new_ids) < max_new_tokens:
            continue  # a character split across tokens: wait for the rest of it
        if len(text) > len(emitted) and text.startswith(emitted):
            piece, emitted = text[len(emitted):], text
            yield piece


@dataclass
class GenerationConfig:
    """What every program that generates from a checkpoint takes (sample, chat)."""
    checkpoint: str = _arg("out/gpt/best.ckpt", "checkpoint file (last.ckpt or best.ckpt)")
    max_new_tokens: int = _arg(500, "tokens to generate")
    temperature: float = _arg(1.0, "softmax temperature (0: always the most likely token)")
    top_k: int = _arg(0, "sample among the k most likely tokens only (0: all)")
    seed: int = _arg(-1, "random seed (-1: a random one)")
    device: str = _arg("auto", "auto, cpu, cuda or cuda:N")
    unknown: str = _arg("error", "what to do with prompt characters outside the vocabulary",
                        choices=["error", "skip"])


@dataclass
class SampleConfig(GenerationConfig):
    """Generate text from a checkpoint written by train.bigram or train.gpt."""
    prompt: str = _arg("\n", "text to continue")


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
