"""CuPy kernels that fuse hot functions on the GPU; the NumPy path is their reference.

A kernel here computes exactly what its caller's array-operation path computes (the one that runs
on the CPU, and on the GPU where the kernel does not apply), in one pass over memory instead of
several; the tests check the two against each other where a GPU is present. Kernels never import
cupy at module import: the caller passes the array module in (``p.xp``, or ``tensorlite.backend``'s
``xp_for``), so importing tensorlite never needs CuPy.

- adamw.py  the whole Adam/AdamW update of one parameter (reference: ``optim.AdamW`` with ``fused=False``)
"""
