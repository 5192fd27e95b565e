"""Module and Parameter: how layers hold their weights and find each other's.

A ``Module`` notices what is assigned to its attributes: a ``Parameter`` goes
into ``_parameters``, a sub-``Module`` into ``_modules``, both in assignment
order. Everything else (parameters(), state_dict(), to(), train()) is a walk
over that tree, so a model never lists its own weights by hand.
"""
from collections import OrderedDict, namedtuple

import numpy as np

from .. import backend
from ..autograd import no_grad
from ..dtypes import is_float
from ..tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module registers as a trainable weight (requires_grad=True by default).

    ``Parameter(t)`` shares t's array, as in PyTorch. Pickled, it keeps its values, device and
    requires_grad, never its .grad (tensorlite.tensor_pickle).
    """

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = np.zeros((0,), dtype=np.float32)
        super().__init__(data, requires_grad=requires_grad)  # a contiguous array is shared, not copied

    @classmethod
    def wrap(cls, array, device, requires_grad=False):
        """What autograd and the tensor methods make from a Parameter (x * w, w.grad) is a plain Tensor, as in
        PyTorch: only the weights a Module holds are Parameters."""
        return Tensor.wrap(array, device, requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


_IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of every layer and model: subclass it, assign layers in __init__, write forward()."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------ registration
    def _registry(self, name):
        try:
            return object.__getattribute__(self, name)
        except AttributeError:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() at the top of __init__ "
                                 "before assigning parameters or sub-modules") from None

    def __setattr__(self, name, value):
        if isinstance(value, (Parameter, Module)):
            params, modules, buffers = (self._registry(n) for n in ("_parameters", "_modules", "_buffers"))
            for d in (params, modules, buffers):
                d.pop(name, None)
            self.__dict__.pop(name, None)
            (params if isinstance(value, Parameter) else modules)[name] = value
            return
        for registry, kind, expected in (("_parameters", "parameter", "a Parameter"),
                                         ("_modules", "sub-module", "a Module")):
            d = self.__dict__.get(registry)
            if d is not None and name in d:
                if value is not None:
                    raise TypeError(f"cannot assign {type(value).__name__} to {kind} {name!r} of "
                                    f"{type(self).__name__} (expected {expected} or None)")
                d[name] = None
                return
        buffers = self.__dict__.get("_buffers")
        if buffers is not None and name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} to buffer {name!r} (expected a Tensor)")
            buffers[name] = value
            return
        object.__setattr__(self, name, value)

    def __getattr__(self, name):  # only called when normal lookup fails
        d = self.__dict__
        for registry in ("_parameters", "_modules", "_buffers"):
            if registry in d and name in d[registry]:
                return d[registry][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        for registry in ("_parameters", "_modules", "_buffers"):
            d = self.__dict__.get(registry)
            if d is not None and name in d:
                del d[name]
                return
        object.__delattr__(self, name)

    def __dir__(self):
        extra = [k for r in ("_parameters", "_modules", "_buffers") for k in self.__dict__.get(r, {})]
        return sorted(set(super().__dir__()) | set(extra))

    def register_parameter(self, name, param):
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter({name!r}): expected a Parameter or None, got {type(param).__name__}")
        self._registry("_parameters")[name] = param

    def add_module(self, name, module):
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module({name!r}): expected a Module or None, got {type(module).__name__}")
        self._registry("_modules")[name] = module

    register_module = add_module

    def register_buffer(self, name, tensor, persistent=True):
        """A tensor that belongs to the module's state but is not trained (moved by to(); saved if persistent)."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer({name!r}): expected a Tensor or None, got {type(tensor).__name__}")
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"register_buffer(): buffer name must be a non-empty string without '.', got {name!r}")
        self._registry("_buffers")[name] = tensor
        skip = self.__dict__.setdefault("_non_persistent", set())
        if persistent:
            skip.discard(name)
        else:
            skip.add(name)

    # ------------------------------------------------------------ forward
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward() method")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------ walking the tree
    def named_modules(self, prefix="", memo=None):
        """(name, module) for this module and every descendant, depth first, each module once."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(prefix + ("." if prefix else "") + name, memo)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self):
        for _, c in self.named_children():
            yield c

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """(dotted name, Parameter) in registration order; a shared (tied) parameter appears once."""
        seen = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mod_name, mod in mods:
            for name, p in mod._parameters.items():
                if p is None or (remove_duplicate and id(p) in seen):
                    continue
                seen.add(id(p))
                yield mod_name + ("." if mod_name else "") + name, p

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True):
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mod_name, mod in mods:
            for name, b in mod._buffers.items():
                if b is not None:
                    yield mod_name + ("." if mod_name else "") + name, b

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn):
        """Call fn(module) on every sub-module, then on self (as PyTorch does, e.g. for custom init)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def num_parameters(self, trainable_only=False):
        """How many numbers the model learns (tied parameters counted once)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    num_params = num_parameters

    # ------------------------------------------------------------ modes, devices, gradients
    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def to(self, *args, device=None, dtype=None):
        """Move (and/or cast) parameters and buffers IN PLACE: the Parameter objects stay the same,
        only their .data changes, so an optimizer made before .to() still holds the right tensors."""
        for a in args:
            if isinstance(a, str) or a is None:
                device = a
            else:
                dtype = a
        if device is not None:
            device = backend.normalize_device(device)
        if dtype is not None:
            dtype = np.dtype(dtype)
            if not is_float(dtype):
                raise TypeError(f"Module.to() only casts to floating-point dtypes, got {dtype}")

        def move(t):
            data = t.data
            if dtype is not None and is_float(data.dtype):
                data = data.astype(dtype)
            if device is not None:
                data = backend.to_device(data, device)
            return data

        seen = set()
        for t in list(self.parameters()) + list(self.buffers()):
            if id(t) in seen:
                continue
            seen.add(id(t))
            t.data = move(t)
            if device is not None:
                t.device = device
            if t.grad is not None:
                t.grad.data = move(t.grad)
                if device is not None:
                    t.grad.device = device
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self, index=0):
        return self.to(f"cuda:{index}")

    def float(self):
        return self.to(dtype=np.float32)

    def double(self):
        return self.to(dtype=np.float64)

    def half(self):
        return self.to(dtype=np.float16)

    def zero_grad(self, set_to_none=True):
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.data[...] = 0

    # ------------------------------------------------------------ state
    def state_dict(self):
        """Ordered {dotted name: Tensor} of parameters and persistent buffers (sharing memory, no grad).

        Tied parameters appear under every name, as in PyTorch.
        """
        out = OrderedDict()
        for mod_name, mod in self.named_modules():
            pre = mod_name + ("." if mod_name else "")
            for name, p in mod._parameters.items():
                if p is not None:
                    out[pre + name] = Tensor.wrap(p.data, p.device)
            skip = mod.__dict__.get("_non_persistent", ())
            for name, b in mod._buffers.items():
                if b is not None and name not in skip:
                    out[pre + name] = Tensor.wrap(b.data, b.device)
        return out

    def _state_targets(self):
        targets = OrderedDict()
        for mod_name, mod in self.named_modules():
            pre = mod_name + ("." if mod_name else "")
            for name, p in mod._parameters.items():
                if p is not None:
                    targets[pre + name] = p
            skip = mod.__dict__.get("_non_persistent", ())
            for name, b in mod._buffers.items():
                if b is not None and name not in skip:
                    targets[pre + name] = b
        return targets

    def load_state_dict(self, state_dict, strict=True):
        """Copy values into the existing parameters (in place, on their device, in their dtype).

        Nothing is changed unless everything fits: shape mismatches always raise, and with strict=True
        missing or unexpected keys do too. The error lists every problem at once.
        Returns (missing_keys, unexpected_keys).
        """
        targets = self._state_targets()
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        mismatched = []
        for k, t in targets.items():
            if k in state_dict:
                shape = tuple(np.shape(state_dict[k].data if isinstance(state_dict[k], Tensor) else state_dict[k]))
                if shape != t.shape:
                    mismatched.append(f"{k}: checkpoint has shape {shape}, the model has {tuple(t.shape)}")
        problems = []
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if mismatched:
            problems.append("shape mismatches: " + "; ".join(mismatched))
        if problems:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n  "
                               + "\n  ".join(problems))
        with no_grad():
            for k, t in targets.items():
                if k in state_dict:
                    value = state_dict[k]
                    src = value.data if isinstance(value, Tensor) else np.asarray(value)
                    src = backend.to_device(src, t.device)
                    t.data[...] = src.astype(t.dtype, copy=False)
        return _IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------ printing
    def extra_repr(self):
        """One line of settings shown inside the parentheses; layers override it."""
        return ""

    def __repr__(self):
        lines = []
        extra = self.extra_repr()
        if extra:
            lines.extend(extra.split("\n"))
        for name, child in self._modules.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"({name}): {body}")
        if not lines:
            return f"{type(self).__name__}()"
        if len(lines) == 1 and not self._modules:
            return f"{type(self).__name__}({lines[0]})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"


class Sequential(Module):
    """Modules applied one after another: Sequential(a, b, c)(x) == c(b(a(x)))."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                if not isinstance(m, Module):
                    raise TypeError(f"Sequential: argument {i} is a {type(m).__name__}, not a Module")
                self.add_module(str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, i):
        mods = list(self._modules.values())
        if isinstance(i, slice):
            return Sequential(*mods[i])
        return mods[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self


class ModuleList(Module):
    """A list of modules whose parameters the parent module can see (a plain list would hide them)."""

    def __init__(self, modules=None):
        super().__init__()
        for m in modules or ():
            self.append(m)

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList.append: expected a Module, got {type(module).__name__}")
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def _index(self, i):
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"ModuleList index {i} is out of range for {n} modules")
        return str(i % n)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return ModuleList(list(self._modules.values())[i])
        return self._modules[self._index(i)]

    def __setitem__(self, i, module):
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList: expected a Module, got {type(module).__name__}")
        self._modules[self._index(i)] = module

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList has no forward(); iterate over it in the parent's forward()")
