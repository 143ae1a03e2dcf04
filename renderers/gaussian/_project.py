"""Projection of 3D Gaussians to the image (EWA splatting), SH colours and tile binning:
the stages every backend shares, written in plain PyTorch with gsplat's conventions
(gsplat 1.5 ``fully_fused_projection`` / ``isect_tiles``), so that our outputs can be
compared with gsplat's own reference functions.

Conventions: quaternions wxyz (normalized here), linear scales, OpenCV world-to-camera
``viewmats`` [C, 4, 4], intrinsics ``Ks`` [C, 3, 3], pixel (i, j) centred at
(j + 0.5, i + 0.5). The 2D covariance is dilated by ``eps2d`` (0.3 px^2, the low-pass
filter of 3DGS); radii are per axis, ``ceil(3.33 sigma)``; Gaussians outside
(near, far) or off-screen get radius 0 and are not drawn.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

SH_C0 = 0.28209479177387814


class Projection(NamedTuple):
    """Per camera and Gaussian (C cameras, N Gaussians).

    Attributes:
        means2d: [C, N, 2] pixel positions of the centres.
        conics: [C, N, 3] inverse 2D covariance (a, b, c) of [[a, b], [b, c]].
        depths: [C, N] camera z of the centres.
        radii: [C, N, 2] int, screen-space extent in pixels per axis (0: not drawn).
        covars2d: [C, N, 2, 2] dilated 2D covariances.
    """

    means2d: Tensor
    conics: Tensor
    depths: Tensor
    radii: Tensor
    covars2d: Tensor


def quat_to_rotmat(quats: Tensor) -> Tensor:  # [..., 4] wxyz -> [..., 3, 3]
    q = F.normalize(quats, dim=-1)
    w, x, y, z = q.unbind(-1)
    R = torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1)
    return R.reshape(*quats.shape[:-1], 3, 3)


def covariances(quats: Tensor, scales: Tensor) -> Tensor:  # [N, 4], [N, 3] -> [N, 3, 3]
    """Sigma = R S S^T R^T."""
    M = quat_to_rotmat(quats) * scales[..., None, :]
    return M @ M.transpose(-1, -2)


def project_gaussians(
    means: Tensor,  # [N, 3]
    covars: Tensor,  # [N, 3, 3]
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
) -> Projection:
    """EWA projection with the perspective Jacobian (clamped to 1.3x the field of view
    as 3DGS does, so Gaussians far outside the frustum do not explode)."""
    R = viewmats[:, None, :3, :3]  # [C, 1, 3, 3]
    t = viewmats[:, None, :3, 3]  # [C, 1, 3]
    mc = (R @ means[None, :, :, None])[..., 0] + t  # [C, N, 3]
    cc = R @ covars[None] @ R.transpose(-1, -2)  # [C, N, 3, 3]
    tx, ty, tz = mc.unbind(-1)
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos = (width - cx) / fx + 0.3 * tan_fovx
    lim_x_neg = cx / fx + 0.3 * tan_fovx
    lim_y_pos = (height - cy) / fy + 0.3 * tan_fovy
    lim_y_neg = cy / fy + 0.3 * tan_fovy
    txc = tz * torch.clamp(tx / tz, min=-lim_x_neg, max=lim_x_pos)
    tyc = tz * torch.clamp(ty / tz, min=-lim_y_neg, max=lim_y_pos)
    zero = torch.zeros_like(tz)
    J = torch.stack([fx / tz, zero, -fx * txc / tz**2, zero, fy / tz, -fy * tyc / tz**2], -1).reshape(*tz.shape, 2, 3)
    cov2d = J @ cc @ J.transpose(-1, -2)
    means2d = (Ks[:, None, :2, :3] @ mc[..., None])[..., 0] / tz[..., None]
    cov2d = cov2d + eps2d * torch.eye(2, dtype=cov2d.dtype)
    det = (cov2d[..., 0, 0] * cov2d[..., 1, 1] - cov2d[..., 0, 1] * cov2d[..., 1, 0]).clamp(min=1e-10)
    conics = torch.stack([cov2d[..., 1, 1] / det, -(cov2d[..., 0, 1] + cov2d[..., 1, 0]) / 2 / det,
                          cov2d[..., 0, 0] / det], -1)
    with torch.no_grad():
        radius = torch.stack([torch.ceil(3.33 * cov2d[..., 0, 0].sqrt()), torch.ceil(3.33 * cov2d[..., 1, 1].sqrt())], -1)
        valid = (det > 0) & (tz > near_plane) & (tz < far_plane)
        inside = ((means2d[..., 0] + radius[..., 0] > 0) & (means2d[..., 0] - radius[..., 0] < width)
                  & (means2d[..., 1] + radius[..., 1] > 0) & (means2d[..., 1] - radius[..., 1] < height))
        radius = torch.where((valid & inside)[..., None], radius, torch.zeros_like(radius))
        radius = torch.nan_to_num(radius, nan=0.0, posinf=0.0, neginf=0.0)
    return Projection(means2d, conics, tz, radius.int(), cov2d)


def sh_basis(degree: int, dirs: Tensor) -> Tensor:  # [..., 3] unit -> [..., (degree+1)^2]
    """Real SH basis of 3DGS/gsplat (Sloan's constants and signs), degrees 0..3."""
    if not 0 <= degree <= 3:
        raise ValueError(f"SH degree must be 0..3; got {degree}")
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        a = 0.48860251190292
        out += [-a * y, a * z, -a * x]
    if degree >= 2:
        z2 = z * z
        fC1, fS1 = x * x - y * y, 2 * x * y
        out += [0.5462742152960395 * fS1, -1.092548430592079 * z * y,
                0.9461746957575601 * z2 - 0.3153915652525201, -1.092548430592079 * z * x, 0.5462742152960395 * fC1]
    if degree >= 3:
        fC2, fS2 = x * fC1 - y * fS1, x * fS1 + y * fC1
        fTmpC = -2.285228997322329 * z2 + 0.4570457994644658
        fTmpB = 1.445305721320277 * z
        out += [-0.5900435899266435 * fS2, fTmpB * fS1, fTmpC * y, z * (1.865881662950577 * z2 - 1.119528997770346),
                fTmpC * x, fTmpB * fC1, -0.5900435899266435 * fC2]
    return torch.stack(out, -1)


def sh_colors(
    means: Tensor,  # [N, 3]
    sh: Tensor,  # [N, K, 3]
    viewmats: Tensor,  # [C, 4, 4]
    degree: int,
) -> Tensor:  # [C, N, 3]
    """View-dependent colours: SH evaluated toward each camera, + 0.5, clamped at 0 (3DGS)."""
    R, t = viewmats[:, :3, :3], viewmats[:, :3, 3]
    campos = -(R.transpose(-1, -2) @ t[..., None])[..., 0]  # [C, 3]
    dirs = F.normalize(means[None] - campos[:, None], dim=-1)
    K = (degree + 1) ** 2
    basis = sh_basis(degree, dirs)  # [C, N, K]
    return torch.clamp_min((basis[..., None] * sh[None, :, :K]).sum(-2) + 0.5, 0.0)


class Tiles(NamedTuple):
    """Gaussians binned to tiles, sorted front to back inside each tile.

    Attributes:
        offsets: [C, TH, TW] long, start of each tile's run in ``ids``.
        ids: [M] long, flattened (camera * N + gaussian) indices.
        counts: [C, TH, TW] long, length of each tile's run.
        tiles_per_gauss: [C, N] long.
    """

    offsets: Tensor
    ids: Tensor
    counts: Tensor
    tiles_per_gauss: Tensor


@torch.no_grad()
def bin_tiles(proj: Projection, width: int, height: int, tile_size: int = 16) -> Tiles:
    """Tile intersection as gsplat's ``isect_tiles`` (tile box from centre +- radius),
    sorted by (camera, tile, depth)."""
    C, N = proj.depths.shape
    tw, th = (width + tile_size - 1) // tile_size, (height + tile_size - 1) // tile_size
    tm = proj.means2d.detach() / tile_size
    tr = proj.radii.to(tm.dtype) / tile_size
    lo = torch.floor(tm - tr).long()
    hi = torch.ceil(tm + tr).long()
    lo[..., 0].clamp_(0, tw)
    lo[..., 1].clamp_(0, th)
    hi[..., 0].clamp_(0, tw)
    hi[..., 1].clamp_(0, th)
    span = (hi - lo).clamp_min(0)
    per = span[..., 0] * span[..., 1] * (proj.radii > 0).all(-1)  # [C, N]
    flat = per.reshape(-1)
    owner = torch.repeat_interleave(torch.arange(C * N), flat)  # camera * N + gaussian
    k = torch.arange(int(flat.sum())) - torch.repeat_interleave(torch.cumsum(flat, 0) - flat, flat)
    sx = span.reshape(-1, 2)[owner, 0]
    tx = lo.reshape(-1, 2)[owner, 0] + k % sx.clamp_min(1)
    ty = lo.reshape(-1, 2)[owner, 1] + k // sx.clamp_min(1)
    cam = owner // N
    tile = (cam * th + ty) * tw + tx
    depth = proj.depths.detach().reshape(-1)[owner]
    order = torch.argsort(depth, stable=True)
    order = order[torch.argsort(tile[order], stable=True)]
    tile, ids = tile[order], owner[order]
    counts = torch.bincount(tile, minlength=C * th * tw)
    offsets = torch.cumsum(counts, 0) - counts
    return Tiles(offsets.view(C, th, tw), ids, counts.view(C, th, tw), per)
