"""A web page to prompt a trained model: type a prompt, watch the continuation appear token by token.

    pip install -e ".[web]"
    python -m train.web --checkpoint out/gpt/best.npz          # then open http://127.0.0.1:7860

Gradio is an optional extra, so the core install stays numpy + tqdm: it is imported only inside `main` and
`build_app`. The callback that produces the text (`make_generate`) needs no Gradio at all, so it is tested
without a browser. The page listens on 127.0.0.1 (this machine only) unless --host says otherwise; it makes
no public share link and sends no analytics.
"""
import argparse
import os
import sys
import time

from train.cli import cli_main
from train.errors import UserError

INSTALL_HINT = 'the web page needs Gradio: install it with  pip install -e ".[web]"'


def describe(info, checkpoint=None):
    """Markdown lines telling what model is loaded: its kind, size, vocabulary and training state."""
    kind = info.get("model_type") or info.get("model") or info.get("type") or "model"
    lines = [f"**{kind}**" + (f" from `{os.path.basename(checkpoint)}`" if checkpoint else "")]
    facts = []
    if info.get("num_params") is not None:
        facts.append(f"{info['num_params']:,} parameters")
    if info.get("vocab_size") is not None:
        facts.append(f"vocabulary of {info['vocab_size']} tokens")
    if info.get("step") is not None:
        facts.append(f"trained {info['step']:,} steps")
    if info.get("best_val_loss") is not None and info["best_val_loss"] == info["best_val_loss"]:  # not NaN
        facts.append(f"best validation loss {float(info['best_val_loss']):.4f}")
    if info.get("device"):
        facts.append(f"on {info['device']}")
    if facts:
        lines.append(" · ".join(facts))
    config = info.get("config")
    if isinstance(config, dict) and config:
        lines.append("`" + ", ".join(f"{k}={v}" for k, v in config.items()) + "`")
    return "\n\n".join(lines)


def unknown_message(err):
    """A sentence a person can act on, for a prompt the vocabulary cannot encode."""
    chars = getattr(err, "chars", None)
    if not chars:
        return str(err)
    shown = " ".join(repr(c) for c in chars[:20]) + (" ..." if len(chars) > 20 else "")
    return (f"The prompt has {len(chars)} character(s) this model never saw in training: {shown}. "
            "Remove them, or tick 'Drop unknown characters'.")


def _warn(message):
    # A pop-up in the page when Gradio is there; the status box carries the same text either way.
    try:
        import gradio
    except ImportError:
        return
    gradio.Warning(message)


def make_generate(model, tokenizer, stream=None):
    """The function behind the Generate button.

    A generator: Gradio sends each value it yields to the page at once, which is what makes the text stream.
    Each yield is (continuation so far, status line). `stream` is models.sampling.generate_stream unless a test
    passes a stand-in.
    """
    if stream is None:
        from models.sampling import generate_stream as stream
    from train.tokenizers import UnknownCharacterError

    def generate(prompt, max_new_tokens, temperature, top_k, seed, drop_unknown=False):
        prompt = prompt or ""
        max_new_tokens = int(max_new_tokens)
        top_k = int(top_k) if top_k else None          # the slider's 0 means "no top-k"
        seed = int(seed) if seed not in (None, "") else None
        text, n, start = "", 0, time.perf_counter()
        try:
            for piece in stream(model, tokenizer, prompt, max_new_tokens=max_new_tokens,
                                temperature=float(temperature), top_k=top_k, seed=seed,
                                unknown="skip" if drop_unknown else "error"):
                text += piece
                n += 1
                yield text, f"generating… {n}/{max_new_tokens} tokens"
        except UnknownCharacterError as err:
            message = unknown_message(err)
            _warn(message)
            yield "", "⚠️ " + message
            return
        except ValueError as err:                      # e.g. a setting the sampler refuses
            _warn(str(err))
            yield text, f"⚠️ {err}"
            return
        seconds = time.perf_counter() - start
        yield text, f"{n} tokens in {seconds:.2f} s ({n / max(seconds, 1e-9):.0f} tokens/s)"

    return generate


def build_app(model, tokenizer, info, checkpoint=None, stream=None):
    """The page, as a gradio.Blocks: model facts on top, prompt and settings, then the streamed text."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"   # read when gradio is first imported
    import gradio as gr

    generate = make_generate(model, tokenizer, stream)
    vocab = int(info.get("vocab_size") or getattr(tokenizer, "vocab_size", 0) or 100)
    with gr.Blocks(title="tensorlite: prompt a model", analytics_enabled=False) as app:
        gr.Markdown("## tensorlite: prompt a model")
        gr.Markdown(describe(info, checkpoint), elem_id="model-info")
        with gr.Row():
            with gr.Column(scale=3):
                prompt = gr.Textbox(label="Prompt", lines=3, placeholder="Type the beginning of a text…",
                                    elem_id="prompt")
                with gr.Row():
                    run = gr.Button("Generate", variant="primary", elem_id="generate")
                    stop = gr.Button("Stop", elem_id="stop")
                output = gr.Textbox(label="Continuation", lines=10, interactive=False, elem_id="output")
                status = gr.Textbox(label="Status", lines=1, interactive=False, elem_id="status")
            with gr.Column(scale=2):
                max_new = gr.Slider(1, 1000, value=200, step=1, label="Max new tokens", elem_id="max-new-tokens")
                temperature = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Temperature",
                                        info="lower = safer, higher = wilder; 0 = always the likeliest",
                                        elem_id="temperature")
                top_k = gr.Slider(0, vocab, value=0, step=1, label="Top-k",
                                  info="sample only from the k likeliest tokens; 0 = all", elem_id="top-k")
                seed = gr.Number(value=None, precision=0, label="Seed", info="blank = different every time",
                                 elem_id="seed")
                drop_unknown = gr.Checkbox(False, label="Drop unknown characters", elem_id="drop-unknown")

        inputs = [prompt, max_new, temperature, top_k, seed, drop_unknown]
        # one generation at a time across both triggers: the model and the seeded generator are shared
        events = [trigger(generate, inputs, [output, status], concurrency_id="generate", concurrency_limit=1)
                  for trigger in (run.click, prompt.submit)]
        stop.click(None, None, None, cancels=events)
    return app


def serve(argv=None):
    """Parse the flags, load the checkpoint, serve the page until Ctrl+C; what the user can fix is a UserError."""
    parser = argparse.ArgumentParser(prog="python -m train.web", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by train.bigram or train.gpt")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    args = parser.parse_args(argv)

    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    if not os.path.isfile(args.checkpoint):
        raise UserError(f"no checkpoint file at {args.checkpoint!r}")
    from train.checkpoint import load_checkpoint_model
    try:
        model, tokenizer, info = load_checkpoint_model(args.checkpoint, device=args.device)
    except Exception as err:  # any reason the file can't become a model is the same answer to the user
        raise UserError(f"cannot load checkpoint {args.checkpoint!r}: {type(err).__name__}: {err}") from None

    app = build_app(model, tokenizer, info, checkpoint=args.checkpoint)
    try:
        app.queue().launch(server_name=args.host, server_port=args.port, share=False, show_error=True,
                           inbrowser=False, quiet=True, prevent_thread_lock=True)
    except OSError as err:  # the port is taken, or the host is not an address of this machine
        raise UserError(f"cannot listen on {args.host}:{args.port}: {err}") from None
    print(f"serving {args.checkpoint} at http://{args.host}:{args.port}  (Ctrl+C to stop)", flush=True)
    app.block_thread()  # until Ctrl+C


def main(argv=None):
    """The exit status: 0, or 2 with one 'error:' line on stderr (train.cli.cli_main, as every program)."""
    return cli_main(serve, argv)


if __name__ == "__main__":
    sys.exit(main())
