"""The hand-derived Functions behind ``nn.functional``, one family a file.

Each is ONE ``Function`` whose backward is derived by hand instead of a chain of
primitives recorded by autograd: one node and a few saved arrays instead of a
dozen, no intermediate gradients, and a numerically stable forward. They trust
their inputs: ``nn.functional`` checks them first. ``nn.reference`` composes the
same functions from primitives, and the tests make the two derivations agree.

- loss.py       CrossEntropy
- norm.py       LayerNorm
- embedding.py  Embedding, scatter_add_rows (its backward)
- linear.py     Linear, Dropout, dropout_mask
- attention.py  ScaledDotProductAttention, SelfAttention (packed q | k | v), the causal bias cache
"""
