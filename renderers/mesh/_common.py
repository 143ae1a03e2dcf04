"""Math shared by every mesh backend: camera-space transforms, the pixel-ray/triangle
intersection that *defines* coverage, and the differentiable recomputation of
barycentrics for the triangle each backend found visible.

Coverage rule (the spec every backend follows): pixel (i, j) samples the camera ray
through its centre (j + 0.5, i + 0.5). Triangle f covers it when that ray meets f
(barycentrics >= 0, Moller-Trumbore in camera space, float64) at camera depth
``near <= z <= far``. The visible triangle has the smallest z; ties go to the smaller
triangle index. Because coverage is a ray test in camera space, triangles crossing
the near plane or lying partly behind the camera need no clipping.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class Fragments(NamedTuple):
    """Per-pixel rasterization result (batch B, height H, width W).

    Attributes:
        face_index: [B, H, W] long, visible triangle or -1 for background.
        bary: [B, H, W, 3] perspective-correct barycentric weights of the visible
            triangle's corners (zeros on background); differentiable w.r.t. vertices.
        depth: [B, H, W] camera-space z of the surface (0 on background); differentiable.
        mask: [B, H, W] bool, covered pixels.
    """

    face_index: Tensor
    bary: Tensor
    depth: Tensor
    mask: Tensor


def to_camera(
    vertices: Tensor,  # [B, V, 3] world
    world_to_camera: Tensor,  # [B, 4, 4]
) -> Tensor:  # [B, V, 3]
    R = world_to_camera[..., :3, :3]
    t = world_to_camera[..., :3, 3]
    return vertices @ R.transpose(-1, -2) + t[..., None, :]


def pixel_rays(
    K: Tensor,  # [B, 3, 3]
    height: int,
    width: int,
    dtype: torch.dtype = torch.float64,
) -> Tensor:  # [B, H, W, 3] camera-space directions with z = 1
    """Rays through pixel centres: d = K^-1 (j + 0.5, i + 0.5, 1)."""
    j = torch.arange(width, dtype=dtype) + 0.5
    i = torch.arange(height, dtype=dtype) + 0.5
    pix = torch.stack([j[None, :].expand(height, width), i[:, None].expand(height, width),
                       torch.ones(height, width, dtype=dtype)], -1)  # [H, W, 3]
    Kinv = torch.linalg.inv(K.to(dtype))  # [B, 3, 3]
    return torch.einsum("bxy,hwy->bhwx", Kinv, pix)


def ray_triangle(
    d: Tensor,  # [..., 3] ray directions (z = 1)
    a: Tensor,  # [..., 3] triangle corners, camera space
    b: Tensor,  # [..., 3]
    c: Tensor,  # [..., 3]
) -> tuple[Tensor, Tensor, Tensor]:  # bary [..., 3], z [...], det [...]
    """Moller-Trumbore from the camera origin: the point a + u (b - a) + v (c - a) = z d.

    Returns the barycentric weights (1 - u - v, u, v), the depth z (the ray's z is 1,
    so the ray parameter is camera z) and the determinant (0 when the ray is parallel).
    """
    e1 = b - a
    e2 = c - a
    p = torch.linalg.cross(d, e2, dim=-1)
    det = (e1 * p).sum(-1)
    safe = torch.where(det.abs() > 1e-300, det, torch.ones_like(det))
    inv = 1.0 / safe
    s = -a
    u = (s * p).sum(-1) * inv
    q = torch.linalg.cross(s, e1, dim=-1)
    v = (d * q).sum(-1) * inv
    z = (e2 * q).sum(-1) * inv
    bary = torch.stack([1.0 - u - v, u, v], -1)
    return bary, z, det


def covers(bary: Tensor, z: Tensor, det: Tensor, near: float, far: float) -> Tensor:
    """The coverage rule on ray/triangle results (see the module docstring)."""
    return (det.abs() > 1e-300) & (bary >= 0).all(-1) & (z >= near) & (z <= far)


def differentiable_fragments(
    face_index: Tensor,  # [B, H, W] long
    verts_cam: Tensor,  # [B, V, 3]
    faces: Tensor,  # [F, 3]
    rays: Tensor,  # [B, H, W, 3]
) -> Fragments:
    """Barycentrics and depth of the given visible triangles, recomputed with autograd.

    Every backend finds visibility its own way and hands the triangle ids here, so
    gradients w.r.t. vertex positions are the same function everywhere.
    """
    mask = face_index >= 0
    B, H, W = face_index.shape
    b, i, j = torch.nonzero(mask, as_tuple=True)  # only covered pixels are computed
    # Moller-Trumbore is rational-linear in the ray d: with s = -a, e1 = b - a, e2 = c - a,
    #   det = d.(e2 x e1), u = d.(e2 x s) / det, v = d.(s x e1) / det, z = e2.(s x e1) / det.
    # The per-triangle vectors are computed once; each pixel takes three dot products.
    a, b_, c = (verts_cam[:, faces[:, k]] for k in range(3))  # [B, F, 3]
    e1, e2, s_ = b_ - a, c - a, -a
    n_det = torch.linalg.cross(e2, e1, dim=-1)
    n_u = torch.linalg.cross(e2, s_, dim=-1)
    q = torch.linalg.cross(s_, e1, dim=-1)
    z_num = (e2 * q).sum(-1, keepdim=True)
    coef = torch.cat([n_det, n_u, q, z_num], -1)  # [B, F, 10]
    F = coef.shape[1]
    cp = coef.reshape(B * F, 10).index_select(0, b * F + face_index[b, i, j])  # [P, 10]
    d = rays[b, i, j].to(verts_cam.dtype)
    inv = 1.0 / (d * cp[:, 0:3]).sum(-1)
    u = (d * cp[:, 3:6]).sum(-1) * inv
    v = (d * cp[:, 6:9]).sum(-1) * inv
    bary_p = torch.stack([1.0 - u - v, u, v], -1)
    z_p = cp[:, 9] * inv
    flat = (b * H + i) * W + j
    bary = torch.zeros(B * H * W, 3, dtype=bary_p.dtype).index_put((flat,), bary_p).view(B, H, W, 3)
    z = torch.zeros(B * H * W, dtype=z_p.dtype).index_put((flat,), z_p).view(B, H, W)
    return Fragments(face_index, bary, z, mask)


def triangle_pixel_bounds(
    verts_cam: Tensor,  # [B, V, 3] float64
    faces: Tensor,  # [F, 3]
    K: Tensor,  # [B, 3, 3]
    height: int,
    width: int,
    near: float,
) -> Tensor:  # [B, F, 4] long: i0, i1, j0, j1 (inclusive-exclusive), empty when i0 >= i1
    """Pixel bounding box of each triangle after clipping it to z >= near.

    The clipped polygon's vertices are the corners in front of the near plane and the
    points where edges cross it; its projection bounds every covered pixel centre.
    """
    tri = verts_cam[:, faces]  # [B, F, 3, 3]
    pts = [tri[:, :, k] for k in range(3)]
    for k in range(3):  # edge crossings with the near plane
        p, q = tri[:, :, k], tri[:, :, (k + 1) % 3]
        dz = q[..., 2] - p[..., 2]
        t = (near - p[..., 2]) / torch.where(dz.abs() > 1e-300, dz, torch.ones_like(dz))
        x = p + t[..., None] * (q - p)
        crossing = ((p[..., 2] - near) * (q[..., 2] - near) < 0)
        x = torch.where(crossing[..., None], x, torch.full_like(x, float("nan")))
        pts.append(x)
    P = torch.stack(pts, 2)  # [B, F, 6, 3]
    valid = P[..., 2] >= near * (1 - 1e-12)
    z = torch.where(valid, P[..., 2], torch.ones_like(P[..., 2]))
    fx, fy = K[:, 0, 0, None, None], K[:, 1, 1, None, None]
    cx, cy, s = K[:, 0, 2, None, None], K[:, 1, 2, None, None], K[:, 0, 1, None, None]
    u = (fx * P[..., 0] + s * P[..., 1]) / z + cx
    v = fy * P[..., 1] / z + cy
    inf = torch.tensor(float("inf"), dtype=u.dtype)
    umin = torch.where(valid, u, inf).amin(-1)
    umax = torch.where(valid, u, -inf).amax(-1)
    vmin = torch.where(valid, v, inf).amin(-1)
    vmax = torch.where(valid, v, -inf).amax(-1)
    # Pixel j's centre is j + 0.5: covered centres satisfy umin <= j + 0.5 <= umax.
    pad = 1e-6  # keep centres lying exactly on an edge; the ray test decides them
    j0 = torch.ceil(umin - 0.5 - pad).clamp(0, width)
    j1 = (torch.floor(umax - 0.5 + pad) + 1).clamp(0, width)
    i0 = torch.ceil(vmin - 0.5 - pad).clamp(0, height)
    i1 = (torch.floor(vmax - 0.5 + pad) + 1).clamp(0, height)
    box = torch.stack([i0, i1, j0, j1], -1)
    box = torch.nan_to_num(box, nan=0.0, posinf=0.0, neginf=0.0)
    empty = ~valid.any(-1)
    box[empty] = 0
    return box.long()
