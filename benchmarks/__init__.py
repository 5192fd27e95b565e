"""Benchmarks of tensorlite: matrix products, training steps, generation, corpus preparation, PyTorch."""
import tensorlite  # noqa: F401 (first, so that NumPy loads OpenBLAS with tensorlite's settings: see backend)
