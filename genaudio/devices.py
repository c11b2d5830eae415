"""Torch device choice shared by every stage that trains (encoders, models)."""
from __future__ import annotations

import torch

from genaudio.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> the first CUDA device when there is one, else the CPU; otherwise the named
    device, refused with a clear message when it asks for CUDA on a machine without it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; use device: auto or cpu")
    return torch.device(name)
