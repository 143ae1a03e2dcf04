"""Differentiable renderers (mesh rasterizer, Gaussian splats, volume) behind one
``backend=`` switch: ``reference`` (pure PyTorch, the spec), ``cpu`` (fast CPU path),
``cuda`` (nvdiffrast / gsplat where a GPU and the library are present).

Primitives: ``renderers.mesh`` (rasterize_mesh, render_mesh, ...) and
``renderers.gaussian`` (rasterize_gaussians). This module answers which backends are
usable here.
"""

from __future__ import annotations

import importlib
import importlib.util


def has_cuda() -> bool:
    """True when torch sees a CUDA device (the capability check GPU tests skip on)."""
    import torch

    return bool(torch.cuda.is_available())


def _module_status(name: str, needs_cuda: bool, install: str) -> tuple[bool, str]:
    if importlib.util.find_spec(name) is None:
        return False, f"not installed ({install})"
    try:
        mod = importlib.import_module(name)
    except Exception as exc:  # an installed but broken extension: say why
        return False, f"installed but fails to import: {type(exc).__name__}: {exc}"
    version = getattr(mod, "__version__", "?")
    if needs_cuda and not has_cuda():
        return False, f"{version} installed, but no CUDA device: its kernels cannot run here"
    return True, f"{version} usable"


def _cpu_status() -> tuple[bool, str]:
    from .mesh._cpu import numba_available

    ok, why = numba_available()
    if not ok:
        return False, why
    import numba

    return True, f"numba {numba.__version__} kernels, {numba.config.NUMBA_NUM_THREADS} threads"


def backend_status() -> dict[str, tuple[bool, str]]:
    """Each renderer backend: (usable, why or why not)."""
    status = {
        "reference": (True, "pure PyTorch, always available (the spec)"),
        "cpu": _cpu_status(),
        "cuda": (has_cuda(), "CUDA device found" if has_cuda() else "no CUDA device (torch sees none)"),
    }
    status["nvdiffrast"] = _module_status(
        "nvdiffrast", True, "not on PyPI; non-commercial licence: build it from NVlabs/nvdiffrast yourself")
    status["gsplat"] = _module_status("gsplat", True, "pip install 'avatar-engine[cuda]'")
    status["pytorch3d"] = _module_status("pytorch3d", False, "optional; no CPU wheel on PyPI")
    return status
