"""Layers and modules, PyTorch-shaped: ``import tensorlite.nn as nn``; ``import tensorlite.nn.functional as F``."""
from . import functional, init
from .attention import MultiHeadAttention
from .layers import GELU, Dropout, Embedding, FeedForward, LayerNorm, Linear, ReLU
from .module import Module, ModuleList, Parameter, Sequential

__all__ = ["functional", "init", "Parameter", "Module", "Sequential", "ModuleList", "Linear", "Embedding",
           "LayerNorm", "Dropout", "ReLU", "GELU", "MultiHeadAttention", "FeedForward"]
