"""Device selection for torch-based adapters (imports torch only when called)."""

from __future__ import annotations


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; any other value is returned as given.

    Raises ``ValueError`` when a CUDA device is requested on a machine without one.
    """
    import torch

    if device == "auto":
        if not torch.cuda.is_available():
            return "cpu"
        from harness.distributed import local_device

        return local_device() or "cuda"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device} requested, but torch sees no CUDA device (use --device cpu)")
    return device
