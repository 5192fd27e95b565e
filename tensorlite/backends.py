"""tensorlite.backends: what PyTorch tutorials ask torch.backends about.

tensorlite runs on NumPy (CPU) and CuPy (CUDA) only: it has no Apple MPS backend and does not call cuDNN,
so these answer False. The cuDNN flags tutorials set (``backends.cudnn.benchmark = True``) are accepted
and change nothing.
"""


class mps:
    """Apple's Metal backend: not in tensorlite."""

    @staticmethod
    def is_available():
        return False

    @staticmethod
    def is_built():
        return False


class cudnn:
    """cuDNN: tensorlite does not use it; the flags can be set and are ignored."""
    enabled, benchmark, deterministic = False, False, False

    @staticmethod
    def is_available():
        return False
