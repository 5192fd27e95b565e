"""The hand-derived Functions behind ``nn.functional``, one family a file.

Each is ONE ``Function`` whose backward is derived by hand instead of a chain of
primitives recorded by autograd: one node and a few saved arrays instead of a
dozen, no intermediate gradients, and a numerically stable forward. They trust
their inputs: ``nn.functional`` checks them first. ``nn.reference`` composes the
same functions from primitives, and the tests make the two derivations agree.

- loss.py       CrossEntropy
- norm.py       LayerNorm (optionally with the residual add before it: LN(x + r))
- embedding.py  Embedding, scatter_add_rows (its backward)
- linear.py     Linear, Dropout, dropout_mask
- attention.py  ScaledDotProductAttention, SelfAttention (packed q | k | v), the causal bias cache
- activation.py the activations that are not Tensor methods, and BiasAct (bias + ReLU/GELU, the MLP's)

On CUDA with TENSORLITE_FUSED=1 several of them run fused kernels (tensorlite.kernels, unverified and off
by default); each decides with ``kernels.use_fused`` and keeps its array path as the reference.
"""
