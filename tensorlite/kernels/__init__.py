"""CuPy kernels that fuse hot functions on the GPU; the NumPy path is their reference.

A kernel here computes exactly what its caller's array-operation path computes (the one that runs
on the CPU, and on the GPU where the kernel does not apply), in one pass over memory instead of
several; the tests check the two against each other where a GPU is present. Kernels never import
cupy at module import: the caller passes the array module in (``p.xp``, or ``tensorlite.backend``'s
``xp_for``), so importing tensorlite never needs CuPy.

- adamw.py  the whole Adam/AdamW update of one parameter (reference: ``optim.AdamW`` with ``fused=False``)

No kernel here has run on a GPU yet, so none is used unless asked for: ``TENSORLITE_FUSED=1`` in the
environment turns them all on (or ``fused=True`` where a caller takes it). A kernel is turned on by default
once it has passed its tests on a GPU and measured faster there.
"""
import os


def fused_by_default():
    """Whether the fused CUDA kernels are used where the caller does not say: TENSORLITE_FUSED=1."""
    return os.environ.get("TENSORLITE_FUSED", "0") == "1"
