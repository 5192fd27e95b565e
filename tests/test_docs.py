"""docs/course.md, the walk through the freeCodeCamp course in tensorlite: its python blocks run, in order,
in one namespace, as docs/autograd.md's do (tests/test_autograd.py). Their asserts check what the page says.
They are sized to run in seconds on a CPU, with no network and no GPU; ```bash blocks are not run.
"""
import os
import re
import tempfile
import time
from pathlib import Path

import tensorlite

COURSE = Path(__file__).resolve().parent.parent / "docs" / "course.md"
SECTIONS = ["Tensor basics", "CPU against GPU", "The bigram model", "GPT on Sherlock Holmes",
            "GPT on OpenWebText", "Chat", "The web page"]


def python_blocks(text):
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_course_has_a_section_per_step_of_the_course():
    text = COURSE.read_text(encoding="utf-8")
    headings = re.findall(r"^## \d+\. (.+)$", text, flags=re.M)
    assert [h.split(" (")[0] for h in headings] == SECTIONS
    for command in ("python -m benchmarks.matmul", "python -m train.bigram", "python -m train.gpt",
                    "python -m train.prepare openwebtext", "python -m train.gpt --data data/owt",
                    "python -m train.chat --checkpoint", "python -m train.web --checkpoint"):
        assert f"\n{command}" in text, command            # at the start of a line of a bash block


def test_course_code_blocks_run(capsys, monkeypatch, tmp_path):
    blocks = python_blocks(COURSE.read_text(encoding="utf-8"))
    assert len(blocks) >= 9
    monkeypatch.setattr(tensorlite.cuda, "is_available", lambda: False)      # the CPU path, wherever it runs
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))                  # the blocks' mkdtemp goes here
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    namespace = {"__name__": "course_doc"}
    start = time.perf_counter()
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{COURSE.name}[block {i}]", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"python block {i} of {COURSE} failed:\n{code}") from exc
    seconds = time.perf_counter() - start
    out = capsys.readouterr().out
    assert "device: cpu" in out
    assert "bigram: val loss" in out and "course GPT: val loss" in out and "Completion:" in out
    assert namespace["torch"] is tensorlite
    assert os.listdir(work) == [], "the blocks wrote into the working folder"
    assert {"meta.json", "train.bin", "val.bin"} <= set(os.listdir(os.path.join(namespace["work"], "owt")))
    assert not (tmp_path / "no-data-here").exists()
    assert seconds < 30, f"course.md's blocks took {seconds:.1f} s (about 5 s on two cores); keep them small"
