"""The autograd engine: Functions, graph nodes, grad mode and the backward pass.

How a graph is recorded
-----------------------
Every differentiable operation is a subclass of ``Function`` with two methods
written on raw arrays (NumPy or CuPy):

    forward(*arrays)  -> output array          (may stash what backward needs on self)
    backward(grad)    -> one gradient per input (an array, or None)

``Function.apply(*tensors)`` runs ``forward`` and, when grad mode is on and some
input requires grad, makes the Function the *node* that produced the output
tensor (``out._ctx``). The node remembers its input tensors, so following
``_ctx.inputs`` from any tensor walks the graph back to the leaves.

This module knows tensors only through a protocol (as minitorch's autodiff is
written against its Variable): a tensor has ``data`` (its array), ``device``,
``requires_grad``, ``grad``, ``_ctx``, ``_retains_grad``, ``_version_counter`` and ``_base`` (the tensor a
view was taken from, or None), and its class has ``wrap(array, device, requires_grad)``. So it imports nothing but NumPy, and
``tensor.py`` builds on it, never the other way round.

How it is traversed
-------------------
``backward(root)`` orders the graph once, depth first and without recursion,
then visits the tensors from the root towards the leaves. Each visited tensor's
gradient is complete by then (all its consumers came before it), so the node
calls ``backward`` once and hands a gradient to every input that needs one.
Leaves (and tensors that asked for ``retain_grad()``) accumulate into ``.grad``.

How in-place changes are caught
-------------------------------
Every tensor has a version counter (``VersionCounter``), shared by the tensors that share its memory
(``detach()`` and the outputs of view Functions). Each in-place change bumps it. ``apply`` remembers the
versions of the inputs a Function's backward reads (``saves_inputs``) and of its output (``saves_output``);
backward compares them and refuses to compute a gradient from values that changed since (as PyTorch).
The graph's edges point at the *node* that produced an input (``fn.parents``), not only at the tensor
object, so an in-place op that makes a tensor the output of a new node leaves earlier uses unchanged.

How it is freed
---------------
After its backward a node drops its inputs and saved arrays (``release``),
unless ``retain_graph=True``. A second backward through it raises a clear error.
"""
import functools

import numpy as np

_grad_enabled = True
# Set by tensorlite.profiler while a profile is active: hook(fn, 'forward' | 'backward', *arrays) runs and
# times that method. None otherwise, so an unprofiled step pays one `if` per node.
_profile_hook = None


def is_grad_enabled():
    return _grad_enabled


class _GradMode:
    """Base of no_grad / enable_grad / inference_mode: a context manager, and a decorator used either as
    ``@no_grad()`` or as ``@no_grad`` (then the class receives the function itself, as in PyTorch)."""
    mode = True

    def __new__(cls, func=None):
        self = super().__new__(cls)
        return self(func) if callable(func) else self  # @no_grad without parentheses

    def __init__(self, func=None):
        pass

    def __enter__(self):
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = self.mode

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev
        return False

    def __call__(self, func):
        # A fresh instance per call keeps nested/recursive uses independent.
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with type(self)():
                return func(*args, **kwargs)
        return wrapper


class no_grad(_GradMode):
    """Record no graph inside: ``with no_grad():``, ``@no_grad()`` or ``@no_grad``."""
    mode = False


class enable_grad(_GradMode):
    """Turn recording back on inside a ``no_grad`` region."""
    mode = True


class inference_mode(_GradMode):
    """``inference_mode()`` records no graph, like no_grad; ``inference_mode(False)`` changes nothing.
    tensorlite has no separate inference tensors: this is no_grad under PyTorch's name."""

    def __new__(cls, mode=True):
        return cls()(mode) if callable(mode) else object.__new__(cls)  # @inference_mode without parentheses

    def __init__(self, mode=True):
        self.enabled = bool(mode)

    def __enter__(self):
        global _grad_enabled
        self._prev = _grad_enabled
        if self.enabled:
            _grad_enabled = False

    def __call__(self, func):
        enabled = self.enabled

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with inference_mode(enabled):
                return func(*args, **kwargs)
        return wrapper


class set_grad_enabled:
    """``set_grad_enabled(False)`` switches recording off at once; used in a ``with``, it is undone at the end."""

    def __init__(self, mode):
        global _grad_enabled
        self._prev, _grad_enabled = _grad_enabled, bool(mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev
        return False


class VersionCounter:
    """How many times a tensor's memory was changed in place. Tensors that share memory share one counter."""
    __slots__ = ("value",)

    def __init__(self):
        self.value = 0


def mark_dirty(*tensors):
    """Record that the arrays of `tensors` were written in place outside the Tensor API (``p.data -= ...``,
    as optimizers do), so a graph that saved them refuses to backward with the new values."""
    for t in tensors:
        t._version_counter.value += 1


def unbroadcast(grad, shape):
    """Sum `grad` down to `shape`: the backward of NumPy broadcasting.

    Broadcasting (1) prepends axes and (2) stretches axes of length 1; the
    gradient of a stretched input is the sum over the stretched axes.
    """
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


class Function:
    """One differentiable operation. Subclasses define ``forward`` and ``backward``.

    Keyword arguments of ``apply`` (axes, shapes, constants) become attributes of
    the instance before ``forward`` runs. ``self.needs_input_grad`` tells which
    inputs want a gradient, so backward can skip the others.

    Three class flags tell the engine what backward reads, so that it can catch in-place changes
    (an instance may override them in ``forward``, e.g. a reshape that had to copy is no view):
        saves_inputs   backward reads the input arrays: their versions are checked before it runs
        saves_output   backward reads the output array (exp, tanh, sqrt...): its version is checked
        is_view        the output shares the first input's memory (and so its version counter)
    """
    saves_inputs = True
    saves_output = False
    is_view = False
    versions = out_version = None  # what apply saw: the inputs' versions, (output counter, its version)

    def __init__(self, **params):
        self.__dict__.update(params)

    def forward(self, *arrays):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **params):
        """Run forward on the inputs' arrays; when recording, make this Function the output's node.

        Written against the Tensor protocol, not the Tensor class: an input is anything with
        ``data``, ``device``, ``requires_grad`` and ``_ctx``, and the output is made by the first
        input's own class (``type(inputs[0]).wrap(array, device, requires_grad)``). A Function whose
        output lives on another device than its inputs (a copy between devices) sets ``self.out_device``.
        """
        for i, t in enumerate(inputs):
            if not hasattr(t, "_ctx"):
                raise TypeError(f"{cls.__name__}.apply: argument {i} is a {type(t).__name__}, not a Tensor "
                                "(wrap arrays with tensorlite.tensor(); pass constants as keyword arguments)")
        device = inputs[0].device
        for t in inputs[1:]:
            if t.device != device:
                raise RuntimeError(
                    f"{cls.__name__}: expected all tensors on the same device, but found {device} and {t.device}; "
                    f"move them with .to({device!r}) or .to({t.device!r})")
        fn = cls(**params)
        fn.needs_input_grad = tuple(t.requires_grad for t in inputs)
        record = _grad_enabled and any(fn.needs_input_grad)
        arrays = tuple(t.data for t in inputs)
        out = fn.forward(*arrays) if _profile_hook is None else _profile_hook(fn, "forward", *arrays)
        device = getattr(fn, "out_device", device)
        result = type(inputs[0]).wrap(_array(out), device, requires_grad=record)
        if fn.is_view:  # one memory, one counter; `_base` lets an in-place op find out it writes a view
            base = inputs[0]
            result._version_counter = base._version_counter
            result._base = base if base._base is None else base._base
        if record:
            fn.inputs = inputs
            # the nodes the inputs came from, as they are now (a view's, taken again if its base changed since)
            fn.parents = tuple([t._ctx if t._base is None else _view_node(t) for t in inputs])
            if fn.is_view:
                fn.view_params = params  # to take this view again from its base (_view_node)
            if fn.saves_inputs:
                fn.versions = tuple([t._version_counter.value for t in inputs])
            if fn.saves_output:
                fn.out_version = (result._version_counter, result._version_counter.value)
            result._ctx = fn
        return result

    def release(self):
        """Drop everything saved for backward (inputs included) once it has run."""
        self.__dict__.clear()
        self.released = True

    def name(self):
        """The node's name as PyTorch shows it: the Function's class name + "Backward0" (Mul -> MulBackward0)."""
        return type(self).__name__ + "Backward0"

    def __repr__(self):
        return f"<{self.name()} object at {id(self):#x}>"

    class AccumulateGrad:
        """What next_functions shows for a leaf that requires grad (backward adds into its .grad)."""

        def __init__(self, variable):
            self.variable = variable

        def name(self):
            return "torch::autograd::AccumulateGrad"

        def __repr__(self):
            return f"<AccumulateGrad object at {id(self):#x}>"

    @property
    def next_functions(self):
        """One (node, 0) pair per input, as in PyTorch: the Function that made it, an AccumulateGrad for a leaf
        that requires grad, None for an input without a gradient. Empty once backward has freed the node."""
        return tuple((None if not t.requires_grad else t._ctx if t._ctx is not None else Function.AccumulateGrad(t),
                      0) for t in getattr(self, "inputs", ()))


_FREED = ("Trying to backward through the graph a second time (or to read a part of it that was freed). "
          "Saved arrays are released after backward; call backward(retain_graph=True) the first time "
          "if you need to backward again.")


def _view_node(view):
    """The node of a view tensor; taken again from its base when the base was changed in place (and became
    the output of a new node) after the view was made, as PyTorch regenerates a view's grad_fn: the values
    the view shows now came through that change, so its gradient must too."""
    chain, node = [], view._ctx
    while node is not None and node.is_view and hasattr(node, "view_params"):  # (a released node has none)
        chain.append(node)
        src = node.inputs[0]
        if src._base is None:  # the base itself
            if src._ctx is node.parents[0]:
                return view._ctx  # unchanged since the view was made
            new = src
            for n in reversed(chain):  # the same view ops, applied to the base as it is now
                new = type(n).apply(new, **n.view_params)
            view._ctx, view.requires_grad = new._ctx, new.requires_grad
            return view._ctx
        node = src._ctx
    return view._ctx


def _key(t, node):
    """A graph vertex: the node that made a tensor, or the tensor itself for a leaf."""
    return id(t) if node is None else id(node)


def _topological_order(root):
    """(tensor, node) vertices reachable from `root` through requires-grad edges, inputs before consumers.

    An edge goes to the node that produced the input when it was used (``fn.parents``): after an
    in-place op the tensor object belongs to a new node, but earlier uses still lead to the old one."""
    order, visited = [], set()
    stack = [(root, root._ctx, False)]
    while stack:
        t, node, expanded = stack.pop()
        if expanded:
            order.append((t, node))
            continue
        key = _key(t, node)
        if key in visited:
            continue
        visited.add(key)
        stack.append((t, node, True))
        if node is not None:
            if getattr(node, "released", False):
                raise RuntimeError(_FREED)
            for inp, parent, needed in zip(node.inputs, node.parents, node.needs_input_grad):
                if needed and _key(inp, parent) not in visited:
                    stack.append((inp, parent, False))
    return order


def _check_versions(node):
    """RuntimeError (PyTorch's message) if an array this node's backward reads was changed in place."""
    versions = node.versions
    if versions is not None:
        for i, (t, v) in enumerate(zip(node.inputs, versions)):
            if t._version_counter.value != v:
                _modified(f"input {i} of {type(node).__name__}", t, t._version_counter.value, v)
    out = node.out_version
    if out is not None and out[0].value != out[1]:
        _modified(f"output 0 of {type(node).__name__}", None, out[0].value, out[1])


def _modified(what, t, now, expected):
    desc = f"[tensor of shape {tuple(t.data.shape)}, {t.data.dtype}], which is " if t is not None else ""
    raise RuntimeError(f"one of the variables needed for gradient computation has been modified by an inplace "
                       f"operation: {desc}{what}, is at version {now}; expected version {expected} instead. "
                       "Hint: change it out of place (x = x * 2, not x *= 2), or clone() it before the change.")


def backward(root, gradient=None, retain_graph=False):
    """Accumulate d(root)/d(leaf) into ``leaf.grad`` for every leaf that requires grad."""
    if not root.requires_grad:
        raise RuntimeError("backward() called on a tensor that does not require grad and has no grad_fn "
                           "(did you create it under no_grad(), or forget requires_grad=True?)")
    xp = root.xp
    if gradient is None:
        if root.data.size != 1:
            raise RuntimeError(f"backward() without a gradient works only for scalar outputs, but the output has "
                               f"shape {tuple(root.shape)}; reduce it (e.g. .sum()) or pass gradient=")
        gradient = xp.ones_like(root.data)
    else:
        gradient = gradient.data if hasattr(gradient, "_ctx") else xp.asarray(gradient)
        if gradient.shape != root.data.shape:
            raise RuntimeError(f"gradient has shape {tuple(gradient.shape)} but the output has shape {tuple(root.shape)}")
        gradient = gradient.astype(root.dtype, copy=True)

    grads = {_key(root, root._ctx): gradient}
    handed_out = set()  # ids of the arrays stored in some .grad during this call
    for t, ctx in reversed(_topological_order(root)):
        g = grads.pop(_key(t, ctx), None)
        if g is not None and (ctx is None or (t._retains_grad and t._ctx is ctx)):
            _accumulate(t, g, handed_out)
        if g is not None and ctx is not None:
            _check_versions(ctx)
            input_grads = ctx.backward(g) if _profile_hook is None else _profile_hook(ctx, "backward", g)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            if len(input_grads) != len(ctx.inputs):
                raise RuntimeError(f"{type(ctx).__name__}.backward returned {len(input_grads)} gradients for "
                                   f"{len(ctx.inputs)} input(s); return one per input (None for no gradient)")
            for inp, parent, needed, ig in zip(ctx.inputs, ctx.parents, ctx.needs_input_grad, input_grads):
                if ig is None or not needed:
                    continue
                ig = _array(ig)
                if ig.shape != inp.data.shape:
                    raise RuntimeError(f"{type(ctx).__name__}.backward returned a gradient of shape {tuple(ig.shape)} "
                                       f"for an input of shape {tuple(inp.shape)}")
                key = _key(inp, parent)
                prev = grads.get(key)
                if prev is not None:
                    ig = _array(prev + ig)
                grads[key] = ig
        if ctx is not None and not retain_graph:
            ctx.release()


def _array(x):
    """NumPy gives scalars, not arrays, from reductions and 0-d arithmetic; a Tensor always holds an
    array (one that can be updated in place), so those become 0-d arrays. CuPy always gives arrays."""
    return np.asarray(x) if isinstance(x, (np.generic, float, int)) else x


def _accumulate(t, g, handed_out):
    """Add `g` into ``t.grad``. A new .grad must own its array: a view (reshape, broadcast) or an
    array already stored in another tensor's .grad would tie two gradients together."""
    if t.grad is not None:
        t.grad.data += g
        return
    if g.base is not None or id(g) in handed_out or g.dtype != t.dtype:
        g = g.astype(t.dtype)  # astype always copies
    handed_out.add(id(g))
    t.grad = type(t).wrap(g, t.device)
