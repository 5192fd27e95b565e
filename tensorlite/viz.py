"""The recorded graph as a picture: ``to_dot`` writes it in Graphviz's DOT language, ``draw`` renders it.

    import tensorlite as tl
    x = tl.randn(3, 4, requires_grad=True)
    w = tl.randn(4, 2, requires_grad=True)
    loss = (x @ w).relu().sum()
    print(tl.viz.to_dot(loss, names={"x": x, "w": w}))   # DOT text: needs nothing installed
    tl.viz.draw(loss, "graph.png", names={"x": x, "w": w})   # needs Graphviz's `dot` program

What the picture shows
----------------------
* one box per Function (the node that made a tensor): its name and its output's shape and dtype;
* one ellipse per leaf: its name if you gave one, shape, dtype, and whether ``.grad`` is set
  (blue: requires grad; grey: a constant input that needs no gradient);
* arrows from inputs to the Function that used them, in the direction data flows (``x * x`` has two
  arrows from ``x``, one per input slot: that is why ``x`` receives two gradients);
* the tensor you passed, drawn with a double border and ``output`` in its label.

After ``backward()`` without ``retain_graph=True`` the nodes are freed (``Function.release``): they no
longer know their inputs, so the walk stops at them. A freed node is drawn dashed, with ``(freed)``, and a
note says why the rest is missing. Draw before ``backward()``, or pass ``retain_graph=True`` to it.

The walk is iterative (an explicit stack, like ``autograd.backward``'s), so a chain of 10,000 operations
does not hit Python's recursion limit. Nothing here imports matplotlib or Graphviz's Python bindings:
``draw`` runs the ``dot`` program, and without it writes the ``.dot`` file and says how to install it.
"""
import shutil
import subprocess
import sys
from pathlib import Path

from .serialization import atomic_write

FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
INSTALL_HINT = ("install Graphviz (Debian/Ubuntu: sudo apt-get install graphviz; macOS: brew install graphviz; "
                "Windows: winget install graphviz, or https://graphviz.org/download/)")
FREED_NOTE = ("backward() freed this graph (its nodes no longer hold their inputs), so only what "
              "is drawn could be shown: draw before backward(), or call backward(retain_graph=True)")

_LEAF = 'shape=ellipse, style=filled, fillcolor="#dbe9f6", color="#2b6cb0"'
_CONSTANT = 'shape=ellipse, style=filled, fillcolor="#eeeeee", color="#888888", fontcolor="#555555"'
_FUNCTION = 'shape=box, style="rounded,filled", fillcolor="#fdf1d8", color="#b7791f"'
_FREED = 'shape=box, style="rounded,dashed", color="#888888", fontcolor="#555555"'
_NOTE = 'shape=note, style=filled, fillcolor="#fff8c4", color="#b7a100", fontsize=10'


def _quote(text):
    """A DOT string literal; a newline in `text` becomes DOT's centred line break."""
    text = str(text).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text.replace("\n", "\\n") + '"'


def _describe(t):
    """'(3, 4) float32' (and the device when it is not the CPU)."""
    shape = "(" + ", ".join(str(n) for n in t.shape) + ("," if len(t.shape) == 1 else "") + ")"
    device = "" if t.device == "cpu" else f" {t.device}"
    return f"{shape} {t.dtype.name}{device}"  # the short name: float32, not tensorlite.float32


def _names_by_id(names, params):
    """{id(tensor): name} from the user's {name: tensor} dicts (params first, names win)."""
    found = {}
    for label, mapping in (("params", params), ("names", names)):
        if mapping is None:
            continue
        if not hasattr(mapping, "items"):
            raise TypeError(f"to_dot: {label} must be a dict of name -> tensor, got a {type(mapping).__name__}")
        for name, t in mapping.items():
            if not hasattr(t, "_ctx"):
                raise TypeError(f"to_dot: {label}[{name!r}] is a {type(t).__name__}, not a Tensor")
            found[id(t)] = str(name)
    return found


def to_dot(tensor, names=None, params=None, rankdir="TB"):
    """The graph that produced `tensor` as DOT text (a string), from its leaves down to it.

    names / params: optional ``{name: tensor}`` dicts (e.g. ``dict(model.named_parameters())``) whose
    tensors are labelled with their names. rankdir: 'TB' (inputs on top) or 'LR' (inputs on the left).
    """
    if not hasattr(tensor, "_ctx"):
        raise TypeError(f"to_dot: expected a Tensor, got a {type(tensor).__name__}")
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise ValueError(f"to_dot: rankdir must be one of TB, LR, BT, RL, got {rankdir!r}")
    label_of = _names_by_id(names, params)
    ids, order, edges = {}, [], []  # id(tensor) -> DOT id; tensors in visiting order; (from, to) pairs
    freed = []

    def visit(t):
        if id(t) not in ids:
            ids[id(t)] = f"t{len(ids)}"
            order.append(t)
            stack.append(t)
        return ids[id(t)]

    stack = []
    visit(tensor)
    while stack:  # depth first with an explicit stack, as autograd's walk
        t = stack.pop()
        ctx = t.grad_fn
        if ctx is None:
            continue
        if getattr(ctx, "released", False):
            freed.append(ids[id(t)])
            continue
        for inp in getattr(ctx, "inputs", ()):
            edges.append((visit(inp), ids[id(t)]))

    lines = ["digraph tensorlite {", f"  rankdir={rankdir};",
             '  node [fontname="Helvetica", fontsize=11];', '  edge [color="#555555", arrowsize=0.7];']
    for t in order:
        lines.append(f"  {ids[id(t)]} [label={_quote(_label(t, label_of, t is tensor))}, "
                     f"{_style(t)}{', peripheries=2, penwidth=1.5' if t is tensor else ''}];")
    for src, dst in edges:
        lines.append(f"  {src} -> {dst};")
    if freed:
        lines.append(f"  note [label={_quote(_wrap(FREED_NOTE))}, {_NOTE}];")
        lines += [f'  note -> {node} [style=dotted, arrowhead=none, color="#b7a100"];' for node in freed]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _label(t, label_of, is_output):
    ctx = t.grad_fn
    head = []
    if is_output:
        head.append("output")
    if id(t) in label_of:
        head.append(label_of[id(t)])
    rows = [" ".join(head)] if head else []
    if ctx is not None:
        rows.append(type(ctx).__name__ + (" (freed)" if getattr(ctx, "released", False) else ""))
        rows.append(_describe(t))
        if t.grad is not None:  # retain_grad() kept one
            rows.append("grad: set")
    else:
        rows.append(_describe(t))
        if t.requires_grad:
            rows.append("grad: set" if t.grad is not None else "grad: None")
        elif t.data.size == 1 and t.device == "cpu":  # a scalar constant: its value says more than its shape
            rows.append(f"constant {t.data.item():g}")
        else:
            rows.append("constant (no grad)")
    return "\n".join(rows)


def _style(t):
    ctx = t.grad_fn
    if ctx is None:
        return _LEAF if t.requires_grad else _CONSTANT
    return _FREED if getattr(ctx, "released", False) else _FUNCTION


def _wrap(text, width=44):
    """Break a note into lines of about `width` characters (DOT does not wrap labels)."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "\n".join(lines + [line])


def draw(tensor, path, names=None, params=None, rankdir="TB", timeout=60):
    """Render the graph of `tensor` to `path` (.png, .svg or .pdf, by the suffix; .dot writes the text).

    Runs Graphviz's ``dot`` program. Without it (or if it fails or takes longer than `timeout` seconds) the
    DOT text is written beside `path` with the suffix .dot, and one message on stderr says how to install
    Graphviz and render that file. Returns the Path of the file written. Files are written atomically.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix != ".dot" and suffix not in FORMATS:
        raise ValueError(f"draw: cannot tell the format from {str(path)!r}; end the path with "
                         f"{', '.join(sorted(FORMATS))} or .dot")
    text = to_dot(tensor, names=names, params=params, rankdir=rankdir)
    if suffix == ".dot":
        atomic_write(path, lambda f: f.write(text), mode="w")
        return path
    program = shutil.which("dot")
    why = "Graphviz's `dot` program was not found on PATH"
    if program is not None:
        try:
            done = subprocess.run([program, f"-T{FORMATS[suffix]}"], input=text.encode("utf-8"),
                                  capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            why = f"`dot` took longer than {timeout} s"
        except OSError as exc:
            why = f"`dot` could not be run ({exc})"
        else:
            if done.returncode == 0 and done.stdout:
                atomic_write(path, lambda f: f.write(done.stdout))
                return path
            err = done.stderr.decode("utf-8", "replace").strip().splitlines()
            why = f"`dot` failed (exit status {done.returncode}{': ' + err[0] if err else ''})"
    dot_path = path.with_suffix(".dot")
    atomic_write(dot_path, lambda f: f.write(text), mode="w")
    print(f"tensorlite.viz.draw: {why}, so {path} was not drawn; wrote the graph to {dot_path} instead. To draw "
          f"it, {INSTALL_HINT}, then call draw again or run: dot -T{FORMATS[suffix]} {dot_path} -o {path}",
          file=sys.stderr)
    return dot_path


__all__ = ["to_dot", "draw"]
