"""Layers and modules, PyTorch-shaped: ``import tensorlite.nn as nn``; ``import tensorlite.nn.functional as F``."""
from . import functional, init, utils
from .activation_layers import (ELU, GLU, SELU, Flatten, Hardtanh, Identity, LeakyReLU, LogSigmoid, LogSoftmax, Mish,
                                ReLU6, SiLU, Sigmoid, Softmax, Softmin, Softplus, Softsign, Tanh, Unflatten)
from .attention import MultiHeadAttention
from .layers import GELU, Dropout, Embedding, FeedForward, LayerNorm, Linear, ReLU
from .loss_layers import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss, SmoothL1Loss
from .module import Module, ModuleList, Parameter, Sequential

__all__ = ["functional", "init", "utils", "Parameter", "Module", "Sequential", "ModuleList", "Linear", "Embedding",
           "LayerNorm", "Dropout", "ReLU", "GELU", "MultiHeadAttention", "FeedForward",
           "Tanh", "Sigmoid", "SiLU", "ReLU6", "LeakyReLU", "ELU", "Softplus", "Hardtanh", "Softsign", "LogSigmoid",
           "GLU", "SELU", "Mish", "Softmax", "LogSoftmax", "Softmin", "Identity", "Flatten", "Unflatten",
           "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss", "BCELoss", "BCEWithLogitsLoss"]
