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
``requires_grad``, ``grad``, ``_ctx`` and ``_retains_grad``, and its class has
``wrap(array, device, requires_grad)``. So it imports nothing but NumPy, and
``tensor.py`` builds on it, never the other way round.

How it is traversed
-------------------
``backward(root)`` orders the graph once, depth first and without recursion,
then visits the tensors from the root towards the leaves. Each visited tensor's
gradient is complete by then (all its consumers came before it), so the node
calls ``backward`` once and hands a gradient to every input that needs one.
Leaves (and tensors that asked for ``retain_grad()``) accumulate into ``.grad``.

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
    """Base of no_grad / enable_grad: a context manager, and a decorator when called on a function."""
    mode = True

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
    """Record no graph inside: ``with no_grad():`` or ``@no_grad()``."""
    mode = False


class enable_grad(_GradMode):
    """Turn recording back on inside a ``no_grad`` region."""
    mode = True


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
    """

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
        if record:
            fn.inputs = inputs
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


def _topological_order(root):
    """Tensors reachable from `root` through requires-grad edges, inputs before consumers."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            order.append(t)
            continue
        if id(t) in visited:
            continue
        visited.add(id(t))
        stack.append((t, True))
        ctx = t._ctx
        if ctx is not None:
            if getattr(ctx, "released", False):
                raise RuntimeError(_FREED)
            for inp in ctx.inputs:
                if inp.requires_grad and id(inp) not in visited:
                    stack.append((inp, False))
    return order


def backward(root, gradient=None, retain_graph=False):
    """Accumulate d(root)/d(leaf) into ``leaf.grad`` for every leaf that requires grad."""
    if not root.requires_grad:
        raise RuntimeError("backward() called on a tensor that does not require grad and has no grad_fn "
                           "(did you create it under no_grad(), or forget requires_grad=True?)")
    xp = root.xp
    if gradient is None:
        if root.data.size != 1:
            raise RuntimeError(f"backward() without a gradient works only for scalar outputs, but the output has "
                               f"shape {root.shape}; reduce it (e.g. .sum()) or pass gradient=")
        gradient = xp.ones_like(root.data)
    else:
        gradient = gradient.data if hasattr(gradient, "_ctx") else xp.asarray(gradient)
        if gradient.shape != root.data.shape:
            raise RuntimeError(f"gradient has shape {gradient.shape} but the output has shape {root.shape}")
        gradient = gradient.astype(root.dtype, copy=True)

    grads = {id(root): gradient}
    handed_out = set()  # ids of the arrays stored in some .grad during this call
    for t in reversed(_topological_order(root)):
        g = grads.pop(id(t), None)
        ctx = t._ctx
        if g is not None and (ctx is None or t._retains_grad):
            _accumulate(t, g, handed_out)
        if g is not None and ctx is not None:
            input_grads = ctx.backward(g) if _profile_hook is None else _profile_hook(ctx, "backward", g)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            if len(input_grads) != len(ctx.inputs):
                raise RuntimeError(f"{type(ctx).__name__}.backward returned {len(input_grads)} gradients for "
                                   f"{len(ctx.inputs)} input(s); return one per input (None for no gradient)")
            for inp, ig in zip(ctx.inputs, input_grads):
                if ig is None or not inp.requires_grad:
                    continue
                ig = _array(ig)
                if ig.shape != inp.data.shape:
                    raise RuntimeError(f"{type(ctx).__name__}.backward returned a gradient of shape {ig.shape} "
                                       f"for an input of shape {inp.shape}")
                prev = grads.get(id(inp))
                if prev is not None:
                    ig = _array(prev + ig)
                grads[id(inp)] = ig
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
