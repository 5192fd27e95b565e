"""Pickling a Tensor (or a Parameter): only what it IS, not how it was computed.

``pickle.dump(model, f)`` walks every Parameter of a model. Without this, Python's default for a
slotted object would store every slot, ``.grad`` and the autograd node (``_ctx``, with the arrays it
saved for backward) included: a trained model's file held its gradients too. As in PyTorch, a pickled
tensor keeps its values, dtype (the array's), device and requires_grad; a Parameter its class and any
attributes set on it. A non-leaf tensor that requires grad is refused, as PyTorch does: its graph
cannot be pickled, and silently dropping it would hand back a different kind of tensor.

copy.deepcopy is not pickling: as in PyTorch it copies .grad too (and refuses a non-leaf that requires grad).

A mixin (no state of its own): Tensor lists it among its bases.
"""
import copy

from . import backend


def rebuild_tensor(cls, array, device, requires_grad, state=None):
    """The tensor a pickle stored: `array` (NumPy) moved to `device`, wrapped as `cls`."""
    t = cls.wrap(backend.to_device(array, device), device, requires_grad)
    if type(t) is not cls:  # a Parameter wraps results as plain tensors: it is rebuilt by its constructor
        t = cls(t, requires_grad=requires_grad)
    if state:
        t.__dict__.update(state)
    return t


class TensorPickle:
    __slots__ = ()

    def __reduce_ex__(self, protocol):
        if self.requires_grad and self._ctx is not None:
            raise RuntimeError("Cowardly refusing to serialize non-leaf tensor which requires_grad, since autograd "
                               "does not support crossing process boundaries: pickle t.detach() instead")
        state = getattr(self, "__dict__", None) or None  # a subclass's own attributes (Parameter has a __dict__)
        return rebuild_tensor, (type(self), backend.to_numpy(self.data), self.device, self.requires_grad, state)

    def __deepcopy__(self, memo):
        if self.requires_grad and self._ctx is not None:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) support the deepcopy "
                               "protocol at the moment: deepcopy t.detach() instead")
        new = rebuild_tensor(type(self), self.data.copy(), self.device, self.requires_grad)
        memo[id(self)] = new
        if self.grad is not None:
            new.grad = copy.deepcopy(self.grad, memo)
        state = getattr(self, "__dict__", None)
        if state:
            new.__dict__.update(copy.deepcopy(state, memo))
        return new
