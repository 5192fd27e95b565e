"""How a tensor prints: PyTorch's text, character for character (with ``torch`` read as ``tensorlite``).

``repr(t)`` and ``str(t)`` are ``tensor(<values>, <suffixes>)``. The rules, as PyTorch applies them:

Values (the ``Formatter``). All elements share one format and one width, chosen from the nonzero
finite values (zeros, inf and nan only take that format):
- integers and bools: ``str(v)``;
- floats whose nonzero finite values are all whole numbers ("int mode"): ``1.``, ``-3.``;
- otherwise ``precision`` (4) digits after the point: ``0.0900``;
- scientific notation, ``1.0000e-10``, when the largest magnitude is over 1000 times the smallest,
  or over 1e8, or the smallest is under 1e-4 (``set_printoptions(sci_mode=)`` forces it on or off).
Every element is right-aligned to the widest one.

Layout. A row holds as many elements (each ``width + 2`` characters with its ", ") as fit in
``linewidth`` (80) minus the indent, and wraps below the first element. Each level of nesting is one
more ``[`` and one more space of indent; blocks of a 3-d (or more) tensor are separated by blank lines.
Above ``threshold`` (1000) elements only the first and last ``edgeitems`` (3) of each dimension are
shown, with ``...`` between them (and the format is chosen from the shown values only).

Suffixes, in this order: ``device='cuda:0'`` off the CPU; ``size=(0, 3)`` for an empty tensor that
is not 1-d; ``dtype=tensorlite.float64`` unless the dtype is float32, int64 or bool (an empty tensor
shows any dtype but float32); then ``grad_fn=<MulBackward0>`` or ``requires_grad=True``. A suffix that
would pass the line width goes on its own line.

This module also holds ``Size``, the type of ``Tensor.shape``.
"""
import contextlib
import math

import numpy as np

from .dtypes import as_dtype, bool_, default_float, int64


class PrintOptions:
    """The current settings; change them with set_printoptions()."""
    precision, threshold, edgeitems, linewidth, sci_mode = 4, 1000, 3, 80, None


OPTIONS = PrintOptions()
PROFILES = {"default": (4, 1000, 3, 80), "short": (2, 1000, 2, 80), "full": (4, math.inf, 3, 80)}


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None, sci_mode=None):
    """Set how tensors print, as torch.set_printoptions: a profile ('default', 'short' or 'full') first,
    then each option given. As in PyTorch, sci_mode is always set, so leaving it out turns it back to
    automatic (None)."""
    if profile is not None:
        if profile not in PROFILES:
            raise ValueError(f"set_printoptions(): profile must be 'default', 'short' or 'full', got {profile!r}")
        OPTIONS.precision, OPTIONS.threshold, OPTIONS.edgeitems, OPTIONS.linewidth = PROFILES[profile]
    for name, value in (("precision", precision), ("threshold", threshold), ("edgeitems", edgeitems),
                        ("linewidth", linewidth)):
        if value is not None:
            setattr(OPTIONS, name, value)
    OPTIONS.sci_mode = sci_mode


def get_printoptions():
    """The current options as a dict that set_printoptions(**options) accepts."""
    return {name: getattr(OPTIONS, name) for name in ("precision", "threshold", "edgeitems", "linewidth", "sci_mode")}


@contextlib.contextmanager
def printoptions(**options):
    """``with printoptions(precision=2): ...`` sets options inside the block only."""
    saved = get_printoptions()
    set_printoptions(**options)
    try:
        yield
    finally:
        set_printoptions(**saved)


class Formatter:
    """One format and width for all the values of a tensor (see the module docstring)."""

    def __init__(self, values, floating):
        """`values`: a flat NumPy array of the elements that will be shown."""
        self.floating, self.int_mode, self.sci_mode, self.width = floating, True, False, 1
        if not floating:
            self.width = max([1] + [len(str(v)) for v in values.tolist()])
            return
        values = values.astype(np.float64)  # float16 overflows above 65504; PyTorch measures in double too
        shown = values[np.isfinite(values) & (values != 0)]
        if shown.size == 0:  # only zeros, inf and nan: nothing decides the format, keep the defaults
            return
        magnitudes = np.abs(shown)
        smallest, largest = magnitudes.min(), magnitudes.max()
        self.int_mode = bool((shown == np.ceil(shown)).all())
        if OPTIONS.sci_mode is None:
            self.sci_mode = bool(largest / smallest > 1000.0 or largest > 1.0e8 or smallest < 1.0e-4)
        else:
            self.sci_mode = OPTIONS.sci_mode
        p = OPTIONS.precision
        if self.sci_mode:
            texts = [f"{v:.{p}e}" for v in shown.tolist()]
        elif self.int_mode:
            texts = [f"{v:.0f}." for v in shown.tolist()]  # the "." counts in the width
        else:
            texts = [f"{v:.{p}f}" for v in shown.tolist()]
        self.width = max(len(s) for s in texts)

    def format(self, value):
        """`value` (a Python number) as text, right-aligned to the common width."""
        if not self.floating:
            text = str(value)
        elif self.sci_mode:
            text = f"{value:.{OPTIONS.precision}e}"
        elif self.int_mode:
            text = f"{value:.0f}" + ("" if math.isinf(value) or math.isnan(value) else ".")
        else:
            text = f"{value:.{OPTIONS.precision}f}"
        return text.rjust(self.width)


def edges(n):
    """The indices shown of a summarized dimension of length n (all of them when n is short)."""
    e = OPTIONS.edgeitems
    return list(range(n)) if n <= 2 * e else list(range(e)) + list(range(n - e, n))


def shown_values(a):
    """The elements of `a` that a summarized print shows, flat: what the Formatter measures."""
    if a.ndim <= 1:
        return a.reshape(1) if a.ndim == 0 else a[edges(len(a))]
    if OPTIONS.edgeitems == 0:  # only "..." is shown
        return a.reshape(-1)[:0]
    return np.concatenate([shown_values(a[i]) for i in edges(len(a))])


def vector_text(a, indent, summarize, fmt):
    per_line = max(1, math.floor((OPTIONS.linewidth - indent) / (fmt.width + 2)))
    values = a.tolist()
    if summarize and OPTIONS.edgeitems == 0:
        items = ["..."]
    elif summarize and len(values) > 2 * OPTIONS.edgeitems:
        e = OPTIONS.edgeitems
        items = [fmt.format(v) for v in values[:e]] + [" ..."] + [fmt.format(v) for v in values[-e:]]
    else:
        items = [fmt.format(v) for v in values]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def array_text(a, indent, summarize, fmt):
    """The bracketed values of `a` (n-d: one sub-block per row, each one space further in)."""
    if a.ndim == 0:
        return fmt.format(a.item())
    if a.ndim == 1:
        return vector_text(a, indent, summarize, fmt)
    n, e = len(a), OPTIONS.edgeitems
    if summarize and n > 2 * e:
        blocks = [array_text(a[i], indent + 1, summarize, fmt) for i in range(e)] + ["..."] + \
                 [array_text(a[i], indent + 1, summarize, fmt) for i in range(n - e, n)]
    else:
        blocks = [array_text(a[i], indent + 1, summarize, fmt) for i in range(n)]
    return "[" + ("," + "\n" * (a.ndim - 1) + " " * (indent + 1)).join(blocks) + "]"


def with_suffixes(text, suffixes, indent):
    """Append ", suffix" to the text, or ",\\n<indent>suffix" where it would pass the line width.

    A suffix is measured as PyTorch measures its own (``dtype=torch.float64``, 4 characters shorter), so
    the line breaks are PyTorch's exactly and only the name differs (a line may pass 80 by that much)."""
    line_length = len(text) - text.rfind("\n") + 1  # PyTorch's count (one more than the last line's length)
    parts = [text]
    for suffix in suffixes:
        length = len(suffix.replace("tensorlite.", "torch."))
        if line_length + length + 2 > OPTIONS.linewidth:
            parts.append(",\n" + " " * indent + suffix)
            line_length = indent + length
        else:
            parts.append(", " + suffix)
            line_length += length + 2
    return "".join(parts) + ")"


def tensor_repr(array, dtype, device, grad_fn_name=None, requires_grad=False):
    """The text of a tensor holding `array` (a NumPy array, on the host), as PyTorch writes it."""
    prefix = "tensor("
    indent = len(prefix)
    dtype = as_dtype(dtype)
    suffixes = [f"device='{device}'"] if device != "cpu" else []
    if array.size == 0:
        if array.ndim != 1:
            suffixes.append(f"size={tuple(array.shape)}")
        if dtype != default_float:  # no value shows the kind, so anything but the default is named
            suffixes.append(f"dtype={dtype}")
        text = "[]"
    else:
        if not OPTIONS.edgeitems:
            suffixes.append(f"size={tuple(array.shape)}")
        if dtype not in (default_float, int64, bool_):
            suffixes.append(f"dtype={dtype}")
        summarize = array.size > OPTIONS.threshold
        fmt = Formatter(shown_values(array) if summarize else array.reshape(-1), dtype.is_floating_point)
        text = array_text(array, indent, summarize, fmt)
    if grad_fn_name is not None:
        suffixes.append(f"grad_fn=<{grad_fn_name}>")
    elif requires_grad:
        suffixes.append("requires_grad=True")
    return with_suffixes(prefix + text, suffixes, indent)


class Size(tuple):
    """The type of ``Tensor.shape`` and ``Tensor.size()``: a tuple of ints that prints as
    ``tensorlite.Size([4, 3, 2])``. Slices and sums with tuples stay Sizes, as in PyTorch."""
    __slots__ = ()

    def __repr__(self):
        return f"tensorlite.Size({list(self)})"

    __str__ = __repr__

    def __getitem__(self, index):
        item = tuple.__getitem__(self, index)
        return Size(item) if isinstance(index, slice) else item

    def __add__(self, other):
        if not isinstance(other, tuple):
            return NotImplemented
        return Size(tuple.__add__(self, other))

    def __radd__(self, other):
        if not isinstance(other, tuple):
            return NotImplemented
        return Size(tuple.__add__(other, self))

    def numel(self):
        """The number of elements of a tensor of this shape (1 for the empty shape of a 0-d tensor)."""
        return math.prod(self)
