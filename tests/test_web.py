"""The web page (train/web.py): its callback without a browser, its command line, and the page itself driven
in headless Chromium (the log reader behind its loss curve: tests/test_web_log.py).

The browser is driven through chromedriver's W3C WebDriver HTTP API with urllib (the small `WebDriver` class
below), so the test needs no Python package beyond the `web` extra. The browser test skips, saying why, where
Gradio, Chromium or chromedriver are not installed. docs/web.png is made by `test_screenshot_for_the_docs`,
with the GPT that the default command trains (its log.jsonl beside it, so the loss curve shows):

    python -m train.gpt --out_dir /tmp/web-run
    WEB_SCREENSHOT=docs/web.png WEB_CHECKPOINT=/tmp/web-run/best.ckpt WEB_PROMPT="Holmes " \
        python -m pytest -q tests/test_web.py -k screenshot
"""
import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from train import web
from train.tokenizers import CharTokenizer, UnknownCharacterError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def gradio_installed():
    try:
        import gradio  # noqa: F401
    except Exception:  # not installed, or half-installed by an interrupted pip: either way, skip
        return False
    return True


NO_GRADIO = 'the web extra is not installed: pip install -e ".[web]"'
needs_gradio = pytest.mark.skipif(not gradio_installed(), reason=NO_GRADIO)


# --- the callback, with a stand-in for train.sample.generate_stream -----------------------------------------------

class FakeStream:
    """Yields the vocabulary in turn, one character per token, and records how it was called."""

    def __init__(self):
        self.calls = []

    def __call__(self, model, tokenizer, prompt, max_new_tokens=200, temperature=1.0, top_k=None, seed=None,
                 unknown="error"):
        self.calls.append(dict(prompt=prompt, max_new_tokens=max_new_tokens, temperature=temperature,
                               top_k=top_k, seed=seed, unknown=unknown))
        start = len(tokenizer.encode(prompt, unknown=unknown))
        for i in range(max_new_tokens):
            yield tokenizer.decode([(start + i) % tokenizer.vocab_size])


TOK = CharTokenizer.from_text("hello world\n")


def run_all(gen):
    return list(gen)


def test_generate_streams_one_update_per_token_then_a_summary():
    stream = FakeStream()
    generate = web.make_generate(model=None, tokenizer=TOK, stream=stream)
    updates = run_all(generate("hello", 7, 0.8, 0, None))
    expected = "".join(stream(None, TOK, "hello", max_new_tokens=7))
    texts = [text for text, _, _ in updates]
    # each token shows up as soon as it is made: the text grows one character per update
    assert texts[:-1] == [expected[:i] for i in range(1, 8)]
    assert texts[-1] == expected
    assert "7 tokens in" in updates[-1][1]
    # the speed box is left as it is while generating, and tells this generation's speed at the end
    assert [speed for _, _, speed in updates[:-1]] == [None] * 7
    assert updates[-1][2].startswith("Last generation: 7 tokens in")


class Clock:
    """time.perf_counter's stand-in: each reading is `tick` seconds after the previous one."""

    def __init__(self, tick):
        self.now, self.tick = 100.0, tick

    def __call__(self):
        self.now += self.tick
        return self.now


def test_speed_after_a_generation_tells_tokens_time_and_tokens_per_second():
    # readings: start, after the first token, at the end: 0.25 s to the first token, 0.5 s in all
    generate = web.make_generate(None, TOK, stream=FakeStream(), clock=Clock(0.25))
    *_, (text, status, speed) = run_all(generate("hello", 10, 1.0, 0, None))
    assert len(text) == 10
    assert speed == "Last generation: 10 tokens in 0.50 s · 20.0 tokens/s · first token after 0.25 s"
    assert status == "10 tokens in 0.50 s (20 tokens/s)"


def test_speed_text():
    assert web.speed_text(200, 4.0) == "Last generation: 200 tokens in 4.00 s · 50.0 tokens/s"
    assert web.speed_text(0, 0.0).startswith("Last generation: 0 tokens in 0.00 s · 0.0 tokens/s")


def test_generate_converts_page_values_for_the_sampler():
    stream = FakeStream()
    generate = web.make_generate(None, TOK, stream=stream)
    run_all(generate("he", 3.0, 0.5, 0, None))                   # slider floats, top-k 0, blank seed
    run_all(generate("he", 3, 1.5, 4.0, 12.0, True))
    run_all(generate(None, 2, 1.0, 2, ""))                        # an empty prompt box, an empty seed field
    first, second, third = stream.calls
    assert first == dict(prompt="he", max_new_tokens=3, temperature=0.5, top_k=None, seed=None, unknown="error")
    assert second == dict(prompt="he", max_new_tokens=3, temperature=1.5, top_k=4, seed=12, unknown="skip")
    assert third["prompt"] == "" and third["seed"] is None
    assert isinstance(second["max_new_tokens"], int) and isinstance(second["seed"], int)


@pytest.fixture
def popups(monkeypatch):
    """The messages the page would pop up (gr.Warning), recorded instead of shown."""
    shown = []
    monkeypatch.setattr(web, "_warn", shown.append)
    return shown


def test_unknown_characters_give_a_readable_message_not_a_traceback(popups):
    generate = web.make_generate(None, TOK, stream=FakeStream())
    updates = run_all(generate("hé€llo", 5, 1.0, 0, None))
    assert len(updates) == 1
    text, status, speed = updates[0]
    assert text == "" and speed is None                           # the last good generation's speed stays
    assert "'é'" in status and "'€'" in status and "Drop unknown characters" in status
    assert "Traceback" not in status
    assert popups == [status.removeprefix("⚠️ ")]


def test_drop_unknown_characters_generates_anyway():
    generate = web.make_generate(None, TOK, stream=FakeStream())
    text, status, _ = run_all(generate("hé€llo", 5, 1.0, 0, None, True))[-1]
    assert len(text) == 5 and set(text) <= set(TOK.chars)
    assert "5 tokens in" in status


def test_other_sampler_refusals_show_their_message(popups):
    def refusing(*args, **kwargs):
        raise ValueError("temperature must be > 0, got 0.0")
        yield  # pragma: no cover  (makes this a generator, like the real one)

    generate = web.make_generate(None, TOK, stream=refusing)
    assert run_all(generate("he", 5, 0.0, 0, None)) == [("", "⚠️ temperature must be > 0, got 0.0", None)]
    assert popups == ["temperature must be > 0, got 0.0"]


def test_unknown_message_names_the_characters():
    message = web.unknown_message(UnknownCharacterError("€éé"))
    assert "2 character(s)" in message and "'€'" in message and "'é'" in message
    assert web.unknown_message(ValueError("plain")) == "plain"


def test_describe_shows_name_size_and_vocabulary():
    info = {"model_type": "gpt", "num_params": 1234567, "vocab_size": 65, "step": 5000, "best_val_loss": 1.4821,
            "config": {"n_layer": 2, "n_embd": 64}}
    text = web.describe(info, checkpoint="/somewhere/out/best.npz")
    for part in ("gpt", "best.npz", "1,234,567 parameters", "65 tokens", "5,000 steps", "1.4821", "n_layer=2"):
        assert part in text
    for missing in (None, float("nan")):                          # no validation yet: say nothing about it
        text = web.describe({"model_type": "bigram", "num_params": 10, "best_val_loss": missing})
        assert "None" not in text and "nan" not in text and "validation" not in text


# --- the command line ---------------------------------------------------------------------------------------------

def test_without_gradio_it_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)              # makes `import gradio` raise ImportError
    assert web.main(["--checkpoint", "whatever.npz"]) == 2
    err = capsys.readouterr().err
    assert 'pip install -e ".[web]"' in err and "Traceback" not in err


@needs_gradio
def test_missing_checkpoint_exits_2(tmp_path, capsys):
    assert web.main(["--checkpoint", str(tmp_path / "nope.npz")]) == 2
    assert "no checkpoint file" in capsys.readouterr().err


@needs_gradio
def test_corrupt_checkpoint_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"this is not a checkpoint")
    assert web.main(["--checkpoint", str(bad)]) == 2
    assert "cannot load checkpoint" in capsys.readouterr().err


@needs_gradio
def test_app_builds_with_analytics_off():
    info = {"model_type": "bigram", "num_params": 144, "vocab_size": TOK.vocab_size}
    app = web.build_app(None, TOK, info, stream=FakeStream())
    assert app.analytics_enabled is False
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"



# --- the page in headless Chromium --------------------------------------------------------------------------------

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"   # the W3C name of the key that holds an element's id


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url, proc, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing answered at {url} within {timeout} s")


class WebDriver:
    """Just enough of the W3C WebDriver protocol: open a page, find, type, click, run JS, take a screenshot."""

    def __init__(self, chromedriver, chromium, window="1200,900"):
        self.port = free_port()
        self.proc = subprocess.Popen([chromedriver, f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        wait_for_http(self.base + "/status", self.proc, timeout=20)
        options = {"binary": chromium, "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                                "--disable-dev-shm-usage", f"--window-size={window}"]}
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())["value"]
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"WebDriver {method} {path}: {err.read().decode()[:500]}") from None

    def session_call(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def open(self, url):
        self.session_call("POST", "/url", {"url": url})

    def find(self, css):
        return self.session_call("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def type(self, css, text, clear=True):
        element = self.find(css)
        if clear:
            self.session_call("POST", f"/element/{element}/clear", {})
        self.session_call("POST", f"/element/{element}/value", {"text": text})

    def click(self, css):
        self.session_call("POST", f"/element/{self.find(css)}/click", {})

    def js(self, script, *args):
        return self.session_call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def wait_js(self, script, *args, timeout=30):
        """Polls a JS expression until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(script, *args)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"still false after {timeout} s: {script}")

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.session_call("GET", "/screenshot")))

    def quit(self):
        try:
            self.session_call("DELETE", "")
        finally:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def find_browser():
    """(chromedriver, chromium) paths, or pytest.skip saying what is missing."""
    if not gradio_installed():
        pytest.skip(NO_GRADIO)
    driver = shutil.which("chromedriver")
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if not driver or not browser:
        pytest.skip("headless browser test needs Chromium and chromedriver "
                    "(Debian: apt-get install chromium chromium-driver)")
    return driver, browser


TEXT = "the cat sat on the mat. the dog sat on the log.\n" * 40


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A bigram model trained here for 50 steps on a small repetitive text."""
    work = tmp_path_factory.mktemp("web")
    data = work / "text.txt"
    data.write_text(TEXT, encoding="utf-8")
    out = work / "out"
    cmd = [sys.executable, "-m", "train.bigram", "--data", str(data), "--device", "cpu", "--batch_size", "8",
           "--block_size", "8", "--max_iters", "50", "--eval_interval", "25", "--eval_iters", "2",
           "--out_dir", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    found = sorted(p for p in out.iterdir() if p.is_file() and "best" in p.name)
    assert found, f"no best checkpoint in {sorted(p.name for p in out.iterdir())}"
    return str(found[0])


@contextlib.contextmanager
def serve_page(checkpoint, log_dir, window="1200,900"):
    """The page served by `python -m train.web` on a free loopback port, open in headless Chromium."""
    driver, browser = find_browser()
    port = free_port()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    log_path = log_dir / "app.log"
    with open(log_path, "w") as log:                             # a file, not a pipe: a pipe could fill up
        app = subprocess.Popen([sys.executable, "-m", "train.web", "--checkpoint", checkpoint, "--port", str(port),
                                "--device", "cpu"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    session = None
    try:
        try:
            wait_for_http(f"http://127.0.0.1:{port}/", app, timeout=60)
        except (RuntimeError, TimeoutError) as err:
            raise RuntimeError(f"{err}; its output:\n{log_path.read_text()[-3000:]}") from None
        session = WebDriver(driver, browser, window=window)
        session.open(f"http://127.0.0.1:{port}/")
        session.wait_js("return document.querySelector('#prompt textarea') !== null")
        yield session
    finally:
        if session is not None:
            session.quit()
        app.terminate()
        try:
            app.wait(timeout=10)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()


@pytest.fixture(scope="module")
def page(checkpoint, tmp_path_factory):
    """The page serving the bigram checkpoint (its log.jsonl beside it), shared by the browser tests."""
    with serve_page(checkpoint, tmp_path_factory.mktemp("web-log")) as session:
        yield session


@needs_gradio
def test_port_in_use_exits_2(checkpoint, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert web.main(["--checkpoint", checkpoint, "--port", str(port), "--device", "cpu"]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


STATUS = "return document.querySelector('#status textarea, #status input').value"
OUTPUT = "return document.querySelector('#output textarea').value"
SPEED = "return document.querySelector('#speed').innerText"
PLOT_DRAWN = "document.querySelector('#loss-plot canvas, #loss-plot svg') !== null"


@pytest.mark.slow
def test_page_shows_the_model(page):
    info = page.js("return document.querySelector('#model-info').innerText")
    assert "bigram" in info.lower()
    assert f"vocabulary of {len(set(TEXT))} tokens" in info
    assert "parameters" in info


@pytest.mark.slow
def test_page_generates_the_requested_number_of_tokens(page):
    page.type("#max-new-tokens input[type=number]", "37")
    page.type("#seed input", "3")
    page.type("#prompt textarea", "the cat ")
    page.click("#generate")
    status = page.wait_js(f"const s = (() => {{ {STATUS} }})(); return s.includes('tokens in') && s")
    text = page.js(OUTPUT)
    assert len(text) == 37, (text, status)
    assert set(text) <= set(TEXT)
    assert status.startswith("37 tokens in")
    speed = page.wait_js(f"const s = (() => {{ {SPEED} }})(); return s.includes('tokens/s') && s")
    assert speed.startswith("Last generation: 37 tokens in") and "first token after" in speed


@pytest.mark.slow
def test_page_shows_the_loss_curve_of_the_run(page):
    # the bigram fixture evaluated at steps 0, 25 and 50, and its log.jsonl is beside the checkpoint
    note = page.js("return document.querySelector('#loss-note').innerText")
    assert "3 evaluations" in note and "steps 0 to 50" in note
    assert page.wait_js(f"return {PLOT_DRAWN}"), "the loss plot was not drawn"
    legend = page.js("return document.querySelector('#loss-plot').innerText")
    assert "train" in legend and "val" in legend


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("WEB_SCREENSHOT"), reason="WEB_SCREENSHOT=path saves a picture of the page")
def test_screenshot_for_the_docs(checkpoint, tmp_path):
    """WEB_SCREENSHOT=docs/web.png [WEB_CHECKPOINT=out/gpt/best.ckpt WEB_PROMPT=...]: the page after a generation.

    docs/web.png is taken with the GPT of the default command, `python -m train.gpt`, whose log.jsonl is beside
    its checkpoint: WEB_CHECKPOINT names it (the bigram checkpoint of these tests otherwise).
    """
    with serve_page(os.environ.get("WEB_CHECKPOINT", checkpoint), tmp_path, window="1280,1100") as page:
        page.type("#max-new-tokens input[type=number]", os.environ.get("WEB_TOKENS", "200"))
        page.type("#seed input", "7")
        page.type("#temperature input[type=number]", "0.8")
        page.type("#prompt textarea", os.environ.get("WEB_PROMPT", "the cat "))
        page.click("#generate")
        page.wait_js(f"const s = (() => {{ {SPEED} }})(); return s.includes('tokens/s') && s", timeout=120)
        assert page.js(OUTPUT)
        page.wait_js(f"return {PLOT_DRAWN}")
        time.sleep(1)                                             # the plot's fade-in
        page.screenshot(os.environ["WEB_SCREENSHOT"])


@pytest.mark.slow
def test_page_explains_unknown_characters(page):
    page.type("#prompt textarea", "the €at Ж")
    page.click("#generate")
    status = page.wait_js(f"const s = (() => {{ {STATUS} }})(); return s.includes('never saw') && s")
    assert "'€'" in status and "'Ж'" in status
    assert page.js(OUTPUT) == ""
    assert "Traceback" not in page.js("return document.body.innerText")


@pytest.mark.parametrize("port", ["99999", "0", "-1"])
def test_a_port_out_of_range_is_one_line_naming_the_flag_before_gradio(port, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # the check comes before Gradio is even imported
    assert web.main(["--checkpoint", "x.ckpt", "--port", port]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--port must be between 1 and 65535" in err and "Traceback" not in err
