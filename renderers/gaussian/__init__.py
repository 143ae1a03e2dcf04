"""Differentiable 3D Gaussian splatting with gsplat's conventions and return values.

``rasterize_gaussians(means, quats, scales, opacities, colors, viewmats, Ks, width,
height, ...)``: EWA projection with the 0.3 px^2 low-pass dilation, near/far culling,
SH colours up to degree 3, tile binning, depth-sorted front-to-back compositing with
early termination. Backends: ``reference`` (pure PyTorch), ``cpu`` (numba kernels with
the hand-written 3DGS backward), ``gsplat`` (CUDA), ``auto``. Projection, SH and tile
binning are shared PyTorch code; backends differ in the compositing only.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor

from ._composite import composite_cpu, composite_reference, numba_available
from ._project import Projection, Tiles, bin_tiles, covariances, project_gaussians, quat_to_rotmat, sh_basis, sh_colors

__all__ = ["GaussianRender", "Projection", "Tiles", "bin_tiles", "covariances", "gsplat_available",
           "project_gaussians", "quat_to_rotmat", "rasterize_gaussians", "sh_basis", "sh_colors"]

Backend = Literal["auto", "reference", "cpu", "gsplat"]


class GaussianRender(NamedTuple):
    """Output of :func:`rasterize_gaussians` (C cameras, H x W).

    Attributes:
        colors: [C, H, W, 3] composited colours (background included).
        alphas: [C, H, W, 1] accumulated opacity.
        depths: [C, H, W, 1] accumulated camera depth (gsplat's "D"; divide by alphas
            for the expected depth).
        means2d: [C, N, 2] projected centres (retain_grad() for densification).
        radii: [C, N, 2] int screen radii (0: culled).
        conics: [C, N, 3] inverse 2D covariances.
        tiles: the tile binning.
    """

    colors: Tensor
    alphas: Tensor
    depths: Tensor
    means2d: Tensor
    radii: Tensor
    conics: Tensor
    tiles: Tiles


def gsplat_available() -> tuple[bool, str]:
    try:
        import gsplat  # noqa: F401
    except ImportError:
        return False, "gsplat is not installed (pip install 'avatar-engine[cuda]')"
    if not torch.cuda.is_available():
        return False, "gsplat is installed but there is no CUDA device for its kernels"
    return True, "gsplat"


def _choose(backend: Backend) -> str:
    if backend != "auto":
        return backend
    if gsplat_available()[0]:
        return "gsplat"
    return "cpu" if numba_available()[0] else "reference"


def rasterize_gaussians(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4] wxyz
    scales: Tensor,  # [N, 3] linear
    opacities: Tensor,  # [N] in 0..1
    colors: Tensor,  # [N, 3] RGB, or [N, K, 3] SH coefficients with sh_degree
    viewmats: Tensor,  # [C, 4, 4] world-to-camera (OpenCV)
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    sh_degree: int | None = None,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    backgrounds: Tensor | None = None,  # [C, 3]
    tile_size: int = 16,
    backend: Backend = "auto",
) -> GaussianRender:
    """Render Gaussians for C cameras; differentiable w.r.t. every tensor input.

    Args:
        means: [N, 3] centres (world, metres).
        quats: [N, 4] rotations, wxyz, normalized here.
        scales: [N, 3] standard deviations along the rotated axes.
        opacities: [N] opacities in 0..1.
        colors: [N, 3] colours, or [N, K, 3] SH coefficients when ``sh_degree`` is set
            (colour = SH(view direction) + 0.5, clamped at 0, as 3DGS).
        viewmats: [C, 4, 4] world-to-camera; Ks: [C, 3, 3] intrinsics.
        width, height: image size.
        sh_degree: 0..3 with SH colours, None for RGB colours.
        backgrounds: [C, 3] colour behind the Gaussians (default black).
        backend: ``auto``, ``reference``, ``cpu`` or ``gsplat``.
    """
    N = means.shape[0]
    if means.shape != (N, 3) or quats.shape != (N, 4) or scales.shape != (N, 3) or opacities.shape != (N,):
        raise ValueError(f"expected means [N, 3], quats [N, 4], scales [N, 3], opacities [N]; got "
                         f"{tuple(means.shape)}, {tuple(quats.shape)}, {tuple(scales.shape)}, {tuple(opacities.shape)}")
    if viewmats.ndim != 3 or viewmats.shape[1:] != (4, 4) or Ks.shape != (viewmats.shape[0], 3, 3):
        raise ValueError(f"expected viewmats [C, 4, 4] and Ks [C, 3, 3]; got {tuple(viewmats.shape)}, {tuple(Ks.shape)}")
    if sh_degree is None:
        if colors.shape != (N, 3):
            raise ValueError(f"expected colors [N, 3] (or SH [N, K, 3] with sh_degree); got {tuple(colors.shape)}")
    elif colors.ndim != 3 or colors.shape[0] != N or colors.shape[2] != 3 or colors.shape[1] < (sh_degree + 1) ** 2:
        raise ValueError(f"expected SH colors [N, K >= {(sh_degree + 1) ** 2}, 3] for degree {sh_degree}; "
                         f"got {tuple(colors.shape)}")
    C = viewmats.shape[0]
    dtype = means.dtype
    if backgrounds is None:
        backgrounds = torch.zeros(C, 3, dtype=dtype)
    name = _choose(backend)
    if name == "gsplat":
        return _gsplat(means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree,
                       near_plane, far_plane, eps2d, backgrounds, tile_size)
    proj = project_gaussians(means, covariances(quats, scales), viewmats, Ks, width, height, eps2d, near_plane,
                             far_plane)
    rgb = colors[None].expand(C, N, 3) if sh_degree is None else sh_colors(means, colors, viewmats, sh_degree)
    feats = torch.cat([rgb, proj.depths[..., None]], -1)  # depth rides along as a fourth channel
    bg = torch.cat([backgrounds.to(dtype), torch.zeros(C, 1, dtype=dtype)], -1)
    tiles = bin_tiles(proj, width, height, tile_size)
    op = opacities[None].expand(C, N)
    if name == "reference":
        img, alpha = composite_reference(proj.means2d, proj.conics, feats, op, tiles, width, height, tile_size, bg)
    elif name == "cpu":
        img, alpha = composite_cpu(proj.radii, proj.means2d, proj.conics, feats, op, tiles, width, height, tile_size,
                                   bg)
    else:
        raise ValueError(f"unknown backend {backend!r}; use auto, reference, cpu or gsplat")
    return GaussianRender(img[..., :3], alpha[..., None], img[..., 3:], proj.means2d, proj.radii, proj.conics, tiles)


def _gsplat(means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree, near, far, eps2d,
            backgrounds, tile_size) -> GaussianRender:
    """The gsplat CUDA adapter (same conventions; moves tensors to the GPU and back)."""
    from gsplat import rasterization

    dev = torch.device("cuda")
    out, alphas, meta = rasterization(
        means.to(dev), quats.to(dev), scales.to(dev), opacities.to(dev), colors.to(dev), viewmats.to(dev),
        Ks.to(dev), width, height, near_plane=near, far_plane=far, eps2d=eps2d, sh_degree=sh_degree,
        backgrounds=torch.cat([backgrounds, torch.zeros(len(backgrounds), 1, dtype=backgrounds.dtype)], -1).to(dev),
        tile_size=tile_size, render_mode="RGB+D", packed=False)
    cpu = torch.device("cpu")
    return GaussianRender(out[..., :3].to(cpu), alphas.to(cpu), out[..., 3:].to(cpu), meta["means2d"].to(cpu),
                          meta["radii"].to(cpu), meta["conics"].to(cpu),
                          Tiles(meta["isect_offsets"].to(cpu), meta["flatten_ids"].to(cpu),
                                torch.zeros(0), meta["tiles_per_gauss"].to(cpu)))
