"""A web page to prompt a trained model: type a prompt, watch the continuation appear token by token.

    pip install -e ".[web]"
    python -m train.web --checkpoint out/gpt/best.ckpt         # then open http://127.0.0.1:7860

Besides the text it shows the speed of the last generation (tokens/s, seconds) and, when the run's log.jsonl
is beside the checkpoint, that run's train and validation loss per evaluation (`load_loss_curve`, a pure
function: a missing or damaged log hides the plot and says so). Gradio is an optional extra, so the core
install stays numpy + tqdm: it is imported only inside `main` and `build_app`. The callback that produces the
text (`make_generate`) needs no Gradio at all, so it is tested without a browser. The page listens on
127.0.0.1 (this machine only) unless --host says otherwise; it makes no public share link and sends no analytics.
"""
import argparse
import math
import os
import sys
import time

from train.cli import cli_main
from train.plot import parse_record
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


# --- the loss curve of the checkpoint's run ------------------------------------------------------------------------

NO_LOG = "no training log beside this checkpoint"
LOG_LIMIT = 32 << 20     # bytes: a run logs ~150 bytes an evaluation, so a bigger log.jsonl is not one of ours
MAX_POINTS = 2000        # evaluations plotted at most (evenly thinned beyond that); a browser draws them quickly


def load_loss_curve(checkpoint):
    """The run's evaluations from the log.jsonl beside `checkpoint`: (rows, note).

    rows: [(step, train_loss, val_loss), ...] by step, [] when there is nothing to plot; note: one Markdown
    line for the page. The log is untrusted input: a missing, unreadable, oversized or unparsable file gives
    ([], NO_LOG + why), never an exception; lines that are not a whole evaluation (a run killed mid-write)
    are skipped and counted. train.gpt appends, so a log whose step goes back holds several runs: the last
    one, the run that wrote the checkpoint beside it, is the one kept.
    """
    path = os.path.join(os.path.dirname(os.path.abspath(checkpoint)), "log.jsonl")
    try:
        size = os.path.getsize(path)
        if size > LOG_LIMIT:
            return [], f"{NO_LOG} (log.jsonl is {size / 2**20:.0f} MB, too large for a training log)"
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:                                 # absent, a folder, or not readable: the same to the page
        return [], NO_LOG
    rows, skipped = [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            record = parse_record(line)
        except ValueError:                          # not a whole evaluation: a run killed mid-write, or junk
            skipped += 1
            continue
        row = (int(record["step"]), float(record["train_loss"]), float(record["val_loss"]))
        if rows and row[0] <= rows[-1][0]:           # the step went back: a new run begins here
            rows = []
        rows.append(row)
    damaged = f"; skipped {skipped} damaged line(s)" if skipped else ""
    if not rows:
        return [], NO_LOG + (f" (log.jsonl has no readable evaluation{damaged})" if lines else " (log.jsonl is empty)")
    if len(rows) > MAX_POINTS:
        every = math.ceil(len(rows) / MAX_POINTS)
        rows = rows[::every] + ([rows[-1]] if (len(rows) - 1) % every else [])
    best = min(rows, key=lambda r: r[2])
    note = (f"Loss per evaluation, from `log.jsonl` beside the checkpoint: {len(rows)} evaluations, steps "
            f"{rows[0][0]:,} to {rows[-1][0]:,}; lowest validation loss {best[2]:.4f} at step {best[0]:,}{damaged}")
    return rows, note


def loss_frame(rows):
    """rows of load_loss_curve as the long table gr.LinePlot draws: one line per split (pandas comes with Gradio)."""
    import pandas as pd
    return pd.DataFrame([{"step": s, "loss": loss, "split": split} for s, train, val in rows
                         for split, loss in (("train", train), ("val", val))], columns=["step", "loss", "split"])


# --- generation -----------------------------------------------------------------------------------------------------

def speed_text(tokens, seconds, first_token_seconds=None):
    """The speed line shown after a generation: how many tokens, how long, tokens per second."""
    text = f"Last generation: {tokens} tokens in {seconds:.2f} s · {tokens / max(seconds, 1e-9):.1f} tokens/s"
    if first_token_seconds is not None:
        text += f" · first token after {first_token_seconds:.2f} s"
    return text


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


def make_generate(model, tokenizer, stream=None, clock=time.perf_counter):
    """The function behind the Generate button.

    A generator: Gradio sends each value it yields to the page at once, which is what makes the text stream.
    Each yield is (continuation so far, status line, speed line); the speed line is None (leave the box as it
    is) until the generation ends, then speed_text of this generation. `stream` is
    models.sampling.generate_stream and `clock` time.perf_counter unless a test passes stand-ins.
    """
    if stream is None:
        from models.sampling import generate_stream as stream
    from train.tokenizers import UnknownCharacterError

    def generate(prompt, max_new_tokens, temperature, top_k, seed, drop_unknown=False):
        prompt = prompt or ""
        max_new_tokens = int(max_new_tokens)
        top_k = int(top_k) if top_k else None          # the slider's 0 means "no top-k"
        seed = int(seed) if seed not in (None, "") else None
        text, n, start, first = "", 0, clock(), None
        try:
            for piece in stream(model, tokenizer, prompt, max_new_tokens=max_new_tokens,
                                temperature=float(temperature), top_k=top_k, seed=seed,
                                unknown="skip" if drop_unknown else "error"):
                text += piece
                n += 1
                if first is None:
                    first = clock() - start
                yield text, f"generating… {n}/{max_new_tokens} tokens", None
        except UnknownCharacterError as err:
            message = unknown_message(err)
            _warn(message)
            yield "", "⚠️ " + message, None
            return
        except ValueError as err:                      # e.g. a setting the sampler refuses
            _warn(str(err))
            yield text, f"⚠️ {err}", None
            return
        seconds = clock() - start
        yield text, f"{n} tokens in {seconds:.2f} s ({n / max(seconds, 1e-9):.0f} tokens/s)", \
            speed_text(n, seconds, first)

    return generate


def build_app(model, tokenizer, info, checkpoint=None, stream=None):
    """The page, as a gradio.Blocks: model facts on top, prompt and settings, the streamed text and its speed,
    then the loss curve of the run that wrote the checkpoint (when its log.jsonl is beside it)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"   # read when gradio is first imported
    import gradio as gr

    generate = make_generate(model, tokenizer, stream)

    def generate_for_page(*inputs):
        for text, status, speed in generate(*inputs):
            yield text, status, gr.update() if speed is None else speed   # gr.update(): leave the box as it is

    vocab = int(info.get("vocab_size") or getattr(tokenizer, "vocab_size", 0) or 100)
    rows, note = load_loss_curve(checkpoint) if checkpoint else ([], NO_LOG)
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
                speed = gr.Markdown("Last generation: none yet", elem_id="speed")
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
                gr.LinePlot(loss_frame(rows), x="step", y="loss", color="split", title="Training run",
                            x_title="step", y_title="loss (cross-entropy)", height=260, visible=bool(rows),
                            elem_id="loss-plot")
                gr.Markdown(note, elem_id="loss-note")

        inputs = [prompt, max_new, temperature, top_k, seed, drop_unknown]
        # one generation at a time across both triggers: the model and the seeded generator are shared
        events = [trigger(generate_for_page, inputs, [output, status, speed], concurrency_id="generate",
                          concurrency_limit=1)
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
    if not 1 <= args.port <= 65535:
        raise UserError(f"--port must be between 1 and 65535, got {args.port}")

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
