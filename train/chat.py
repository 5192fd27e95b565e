"""An interactive prompt loop: type the start of a text, the model continues it.

    python -m train.chat --checkpoint out/gpt/best.ckpt

An empty line or end of input (Ctrl-D) exits.
"""
import sys
from dataclasses import dataclass

from models.sampling import generate_stream
from train.checkpoint import load_checkpoint_model
from train.cli import cli_main, option, parse_config
from train.sample import GenerationConfig, check_generation_config
from train.tokenizers import UnknownCharacterError


@dataclass
class ChatConfig(GenerationConfig):
    """Chat with a checkpoint: each line you type is continued by the model."""
    max_new_tokens: int = option(300, "tokens generated per reply")
    temperature: float = option(0.8, "softmax temperature")


def chat(model, tokenizer, cfg, input=input, write=sys.stdout.write):
    seed = cfg.seed if cfg.seed >= 0 else None
    while True:
        try:
            prompt = input("you> ")
        except (EOFError, RuntimeError):  # end of input; RuntimeError: no stdin at all (started with <&-)
            write("\n")
            return
        if not prompt.strip():
            return
        try:
            write("model> " + prompt)
            for piece in generate_stream(model, tokenizer, prompt, cfg.max_new_tokens, cfg.temperature,
                                         cfg.top_k or None, seed, cfg.unknown):
                write(piece)
                sys.stdout.flush()
            write("\n")
        except UnknownCharacterError as exc:
            write(f"\n{exc}\n")
        seed = None if seed is None else seed + 1


def main(argv=None):
    cfg, _ = parse_config(ChatConfig, argv)
    check_generation_config(cfg)
    model, tokenizer, info = load_checkpoint_model(cfg.checkpoint, cfg.device)
    print(f"{info['model_type']} model, {info['num_params']:,} parameters, step {info['step']}. "
          "Type a prompt; an empty line or Ctrl-D quits.")
    chat(model, tokenizer, cfg)


if __name__ == "__main__":
    sys.exit(cli_main(main))
