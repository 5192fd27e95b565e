"""tensorlite.viz: the DOT text of a recorded graph (before and after backward) and its rendering."""
import re
import shutil
import subprocess
import sys

import pytest

import tensorlite as tl
from tensorlite import viz

needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz's dot program is not installed (apt-get install graphviz)")


def _parse(text):
    """(nodes {id: label}, edges [(src, dst)]) of to_dot's output, the note included."""
    nodes = dict(re.findall(r'^  (\w+) \[label="((?:[^"\\]|\\.)*)"', text, flags=re.M))
    edges = re.findall(r"^  (\w+) -> (\w+)", text, flags=re.M)
    return {k: v.replace("\\n", "\n") for k, v in nodes.items()}, edges


def _mlp():
    tl.manual_seed(0)
    x = tl.randn(3, 4, requires_grad=True)
    w = tl.randn(4, 2, requires_grad=True)
    b = tl.zeros(2, requires_grad=True)
    return x, w, b, ((x @ w + b).relu()).sum()


def _by_first_line(nodes, word):
    (node,) = [k for k, v in nodes.items() if word in v.splitlines()]
    return node


def test_to_dot_before_backward_has_every_node_and_edge():
    x, w, b, loss = _mlp()
    text = tl.viz.to_dot(loss, names={"x": x, "w": w, "b": b})
    assert text.startswith("digraph tensorlite {") and text.rstrip().endswith("}")
    nodes, edges = _parse(text)
    assert len(nodes) == 7  # 3 leaves, MatMul, Add, ReLU, Sum
    assert nodes[_by_first_line(nodes, "x")] == "x\n(3, 4) float32\ngrad: None"
    assert nodes[_by_first_line(nodes, "b")] == "b\n(2,) float32\ngrad: None"
    out = _by_first_line(nodes, "output")
    assert nodes[out] == "output\nSum\n() float32"
    assert re.search(rf"^  {out} \[.*peripheries=2", text, flags=re.M)  # the output is marked
    mm, add, relu = (_by_first_line(nodes, n) for n in ("MatMul", "Add", "ReLU"))
    assert nodes[mm] == "MatMul\n(3, 2) float32"
    # data flows from the inputs to the Function that used them, in input order
    expected = {(_by_first_line(nodes, "x"), mm), (_by_first_line(nodes, "w"), mm), (mm, add),
                (_by_first_line(nodes, "b"), add), (add, relu), (relu, out)}
    assert set(edges) == expected and len(edges) == 6
    assert "freed" not in text and "note" not in text


def test_to_dot_after_backward_shows_the_root_and_says_the_rest_was_freed():
    x, w, b, loss = _mlp()
    loss.backward()
    nodes, edges = _parse(tl.viz.to_dot(loss, names={"x": x}))
    assert set(nodes) == {"t0", "note"}
    assert nodes["t0"] == "output\nSum (freed)\n() float32"
    assert "retain_graph=True" in nodes["note"] and "freed" in nodes["note"]
    assert edges == [("note", "t0")]


def test_to_dot_after_backward_with_retain_graph_shows_grads_and_a_tensor_used_twice():
    y = tl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    h = y * y
    h.retain_grad()
    z = (h * 2).sum()
    z.backward(retain_graph=True)
    nodes, edges = _parse(tl.viz.to_dot(z, names={"y": y}))
    assert len(nodes) == 5  # y, the constant 2, Mul, Mul, Sum
    leaf = _by_first_line(nodes, "y")
    assert nodes[leaf] == "y\n(3,) float32\ngrad: set"
    assert sum(1 for src, _ in edges if src == leaf) == 2  # x * x: one arrow per input slot
    assert any(v.endswith("constant 2") for v in nodes.values())
    assert any(v == "Mul\n(3,) float32\ngrad: set" for v in nodes.values())  # retain_grad() kept it


def test_to_dot_of_a_leaf_and_of_a_partly_freed_graph():
    a = tl.tensor([1.0], requires_grad=True)
    nodes, edges = _parse(tl.viz.to_dot(a))
    assert nodes == {"t0": "output\n(1,) float32\ngrad: None"} and edges == []
    h = a * 3
    h.sum().backward()  # frees h's node and the Sum
    nodes, edges = _parse(tl.viz.to_dot(h + 1))
    assert any(v == "Mul (freed)\n(1,) float32" for v in nodes.values())
    assert "note" in nodes and ("t0" in {d for _, d in edges})


def test_params_name_a_models_weights():
    model = tl.nn.Linear(3, 2)
    x = tl.randn(5, 3)
    text = tl.viz.to_dot(model(x).sum(), params=dict(model.named_parameters()))
    assert '"weight\\n(2, 3) float32\\ngrad: None"' in text and '"bias\\n(2,) float32' in text
    assert "constant (no grad)" in text  # the input x needs no gradient


def test_deep_graph_without_recursion():
    x = tl.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(3 * sys.getrecursionlimit()):
        y = y * 1.0
    nodes, edges = _parse(tl.viz.to_dot(y))
    assert len(nodes) == 1 + 2 * 3 * sys.getrecursionlimit()  # x, then a Mul and its constant each step
    assert len(edges) == len(nodes) - 1


def test_names_in_labels_are_escaped_and_bad_arguments_refused():
    x = tl.tensor([1.0], requires_grad=True)
    text = tl.viz.to_dot(x * 2, names={'say "hi"\\': x})
    assert 'say \\"hi\\"\\\\' in text
    with pytest.raises(TypeError, match="expected a Tensor, got a list"):
        tl.viz.to_dot([1.0])
    with pytest.raises(TypeError, match=r"names\['x'\] is a list"):
        tl.viz.to_dot(x, names={"x": [1.0]})
    with pytest.raises(ValueError, match="rankdir"):
        tl.viz.to_dot(x, rankdir="UP")
    with pytest.raises(ValueError, match="format"):
        tl.viz.draw(x, "graph.jpeg")


@needs_dot
@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG\r\n\x1a\n"), (".svg", b"<?xml")])
def test_draw_renders_with_dot(tmp_path, suffix, magic):
    x, w, b, loss = _mlp()
    path = tmp_path / f"graph{suffix}"
    assert tl.viz.draw(loss, path, names={"x": x}) == path
    assert path.read_bytes().startswith(magic)
    if suffix == ".svg":
        assert "MatMul" in path.read_text() and "output" in path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary or .dot file left


def _no_dot(monkeypatch):
    real = shutil.which
    monkeypatch.setattr(viz.shutil, "which", lambda name, *a, **k: None if name == "dot" else real(name, *a, **k))


def test_draw_without_dot_writes_the_dot_file_and_says_how_to_install(tmp_path, monkeypatch, capsys):
    _no_dot(monkeypatch)
    x, w, b, loss = _mlp()
    path = tmp_path / "graph.png"
    written = tl.viz.draw(loss, path)
    assert written == tmp_path / "graph.dot" and not path.exists()
    assert written.read_text() == tl.viz.to_dot(loss)
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1  # one message, no traceback
    for hint in ("apt-get install graphviz", "brew install graphviz", "winget install graphviz", "graphviz.org",
                 f"dot -Tpng {written} -o {path}"):
        assert hint in err


def test_draw_falls_back_when_dot_fails_or_hangs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(viz.shutil, "which", lambda name, *a, **k: "/usr/bin/dot")

    def failing(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 1, b"", b'Format: "png" not recognized\nmore')
    monkeypatch.setattr(viz.subprocess, "run", failing)
    x = tl.tensor([1.0], requires_grad=True)
    assert tl.viz.draw(x * 2, tmp_path / "g.png") == tmp_path / "g.dot"
    assert 'exit status 1: Format: "png" not recognized' in capsys.readouterr().err

    def hanging(cmd, **kw):
        raise subprocess.TimeoutExpired(cmd, kw["timeout"])
    monkeypatch.setattr(viz.subprocess, "run", hanging)
    assert tl.viz.draw(x * 2, tmp_path / "h.svg", timeout=3) == tmp_path / "h.dot"
    assert "longer than 3 s" in capsys.readouterr().err


def test_draw_to_a_dot_path_needs_no_graphviz(tmp_path, monkeypatch):
    _no_dot(monkeypatch)
    x = tl.tensor([1.0], requires_grad=True)
    path = tmp_path / "g.dot"
    assert tl.viz.draw(x * 2, path, rankdir="LR") == path
    assert "rankdir=LR;" in path.read_text()


def test_viz_does_not_import_matplotlib():
    code = "import sys, tensorlite.viz; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)  # env: inherited
    assert out.stdout.strip() == "False"
