"""tensorlite.backends: what PyTorch tutorials ask torch.backends about.

tensorlite runs on NumPy (CPU) and CuPy (CUDA) only: it has no Apple MPS backend and does not call cuDNN,
so these answer False. The cuDNN flags tutorials set (``backends.cudnn.benchmark = True``) are accepted
and change nothing.
"""
from . import backend


class mps:
    """Apple's Metal backend: not in tensorlite."""

    @staticmethod
    def is_available():
        return False

    @staticmethod
    def is_built():
        return False


class _Matmul:
    """torch.backends.cuda.matmul.allow_tf32: float32 products on CUDA in TF32 (see backend.set_tf32)."""

    @property
    def allow_tf32(self):
        return backend.tf32_enabled()

    @allow_tf32.setter
    def allow_tf32(self, value):
        backend.set_tf32(value)


class cuda:
    """torch.backends.cuda: only matmul.allow_tf32."""
    matmul = _Matmul()


class cudnn:
    """cuDNN: tensorlite does not use it; the flags can be set and are ignored."""
    enabled, benchmark, deterministic = False, False, False

    @staticmethod
    def is_available():
        return False
