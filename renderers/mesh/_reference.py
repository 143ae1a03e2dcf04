"""Pure-PyTorch visibility: the readable definition of the mesh rasterizer.

Every (triangle, pixel) pair inside the triangle's clipped bounding box is tested with
the ray rule of ``_common``. Pass 1 keeps the nearest depth per pixel; pass 2 keeps,
among the pairs at that depth, the smallest triangle index. Vectorized over pairs,
in chunks of whole triangles.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor

from ._common import covers, ray_triangle, triangle_pixel_bounds

PAIRS_PER_CHUNK = 2_000_000


def _covered_pairs(
    tri: Tensor,  # [F, 3, 3] camera-space corners, float64
    box: Tensor,  # [F, 4] i0, i1, j0, j1
    rays: Tensor,  # [H, W, 3]
    near: float,
    far: float,
    cull_backfaces: bool,
) -> Iterator[tuple[Tensor, Tensor, Tensor]]:  # (pixel [P], depth [P], triangle [P]) per chunk
    W = rays.shape[1]
    h = (box[:, 1] - box[:, 0]).clamp_min(0)
    w = (box[:, 3] - box[:, 2]).clamp_min(0)
    area = h * w
    order = torch.nonzero(area > 0).squeeze(1)
    csum = torch.cumsum(area[order], 0)
    start = 0
    while start < len(order):
        base = int(csum[start - 1]) if start > 0 else 0
        stop = max(int(torch.searchsorted(csum, base + PAIRS_PER_CHUNK, right=True)), start + 1)
        f = order[start:stop]
        n = area[f]
        fid = torch.repeat_interleave(f, n)  # triangle of each pair
        k = torch.arange(int(n.sum())) - torch.repeat_interleave(torch.cumsum(n, 0) - n, n)
        i = box[fid, 0] + k // w[fid]
        j = box[fid, 2] + k % w[fid]
        corners = tri[fid]
        bary, z, det = ray_triangle(rays[i, j], corners[:, 0], corners[:, 1], corners[:, 2])
        hit = covers(bary, z, det, near, far)
        if cull_backfaces:
            hit &= det > 0  # counter-clockwise seen from the camera (see rasterize_mesh)
        yield (i * W + j)[hit], z[hit], fid[hit]
        start = stop


def visible_faces_reference(
    verts_cam: Tensor,  # [B, V, 3]
    faces: Tensor,  # [F, 3]
    K: Tensor,  # [B, 3, 3]
    rays: Tensor,  # [B, H, W, 3] float64
    near: float,
    far: float,
    cull_backfaces: bool,
) -> Tensor:  # [B, H, W] long, -1 background
    B, H, W, _ = rays.shape
    v64 = verts_cam.detach().double()
    box = triangle_pixel_bounds(v64, faces, K, H, W, near)  # [B, F, 4]
    out = torch.full((B, H * W), -1, dtype=torch.long)
    none = torch.iinfo(torch.long).max
    for b in range(B):
        tri = v64[b][faces]
        best_z = torch.full((H * W,), float("inf"), dtype=torch.float64)
        for pix, z, _ in _covered_pairs(tri, box[b], rays[b], near, far, cull_backfaces):
            best_z.scatter_reduce_(0, pix, z, reduce="amin")
        best_f = torch.full((H * W,), none, dtype=torch.long)
        for pix, z, fid in _covered_pairs(tri, box[b], rays[b], near, far, cull_backfaces):
            at_best = z == best_z[pix]
            best_f.scatter_reduce_(0, pix[at_best], fid[at_best], reduce="amin")
        out[b] = torch.where(best_f == none, -1, best_f)
    return out.view(B, H, W)
