"""The web page (train/web.py): its callback without a browser, its command line, and the page itself driven
in headless Chromium.

The browser is driven through chromedriver's W3C WebDriver HTTP API with urllib (the small `WebDriver` class
below), so the test needs no Python package beyond the `web` extra. The browser test skips, saying why, where
Gradio, Chromium or chromedriver are not installed. WEB_SCREENSHOT=docs/web.png saves the page after a
generation (that is how docs/web.png is made).
"""
import base64
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
    texts = [text for text, _ in updates]
    # each token shows up as soon as it is made: the text grows one character per update
    assert texts[:-1] == [expected[:i] for i in range(1, 8)]
    assert texts[-1] == expected
    assert "7 tokens in" in updates[-1][1]


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
    text, status = updates[0]
    assert text == ""
    assert "'é'" in status and "'€'" in status and "Drop unknown characters" in status
    assert "Traceback" not in status
    assert popups == [status.removeprefix("⚠️ ")]


def test_drop_unknown_characters_generates_anyway():
    generate = web.make_generate(None, TOK, stream=FakeStream())
    text, status = run_all(generate("hé€llo", 5, 1.0, 0, None, True))[-1]
    assert len(text) == 5 and set(text) <= set(TOK.chars)
    assert "5 tokens in" in status


def test_other_sampler_refusals_show_their_message(popups):
    def refusing(*args, **kwargs):
        raise ValueError("temperature must be > 0, got 0.0")
        yield  # pragma: no cover  (makes this a generator, like the real one)

    generate = web.make_generate(None, TOK, stream=refusing)
    assert run_all(generate("he", 5, 0.0, 0, None)) == [("", "⚠️ temperature must be > 0, got 0.0")]
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

    def __init__(self, chromedriver, chromium):
        self.port = free_port()
        self.proc = subprocess.Popen([chromedriver, f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        wait_for_http(self.base + "/status", self.proc, timeout=20)
        options = {"binary": chromium, "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                                "--disable-dev-shm-usage", "--window-size=1200,900"]}
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


@pytest.fixture(scope="module")
def page(checkpoint, tmp_path_factory):
    """The page served by `python -m train.web` on a free loopback port, open in headless Chromium."""
    driver, browser = find_browser()
    port = free_port()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    log_path = tmp_path_factory.mktemp("web-log") / "app.log"
    with open(log_path, "w") as log:                             # a file, not a pipe: a pipe could fill up
        app = subprocess.Popen([sys.executable, "-m", "train.web", "--checkpoint", checkpoint, "--port", str(port),
                                "--device", "cpu"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    session = None
    try:
        try:
            wait_for_http(f"http://127.0.0.1:{port}/", app, timeout=60)
        except (RuntimeError, TimeoutError) as err:
            raise RuntimeError(f"{err}; its output:\n{log_path.read_text()[-3000:]}") from None
        session = WebDriver(driver, browser)
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
    if os.environ.get("WEB_SCREENSHOT"):
        page.screenshot(os.environ["WEB_SCREENSHOT"])


@pytest.mark.slow
def test_page_explains_unknown_characters(page):
    page.type("#prompt textarea", "the €at Ж")
    page.click("#generate")
    status = page.wait_js(f"const s = (() => {{ {STATUS} }})(); return s.includes('never saw') && s")
    assert "'€'" in status and "'Ж'" in status
    assert page.js(OUTPUT) == ""
    assert "Traceback" not in page.js("return document.body.innerText")
