"""Analytic silhouette antialiasing (the approach of nvdiffrast's ``antialias``).

For every pair of horizontally or vertically adjacent pixels covered by different
surfaces (different triangles that do not share an edge, or a triangle and the
background), the occluding triangle's edge crosses the segment between the two pixel
centres at a fraction t (0 at the occluder's pixel, 1 at the other). Each pixel owns
half the segment, so:

- t > 1/2: the occluder reaches into the other pixel, which takes (t - 1/2) of the
  occluder's colour;
- t < 1/2: the occluder does not fill its own half, and its pixel takes (1/2 - t) of
  the other pixel's colour.

The blend is a differentiable function of the projected vertex positions through t,
so silhouettes pass gradients to geometry, and of the colours.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._common import Fragments


def project_vertices(
    verts_cam: Tensor,  # [B, V, 3]
    K: Tensor,  # [B, 3, 3]
) -> Tensor:  # [B, V, 2] pixels (continuous; pixel centres at +0.5)
    z = verts_cam[..., 2:3].clamp_min(1e-9)
    p = verts_cam / z
    return p @ K[:, :2, :].transpose(-1, -2)


def antialias(
    color: Tensor,  # [B, H, W, C]
    fragments: Fragments,
    verts_cam: Tensor,  # [B, V, 3] camera space
    faces: Tensor,  # [F, 3]
    K: Tensor,  # [B, 3, 3]
    near: float = 0.01,
) -> Tensor:  # [B, H, W, C]
    """Blend colours across silhouette edges (see the module docstring)."""
    B, H, W, C = color.shape
    uv = project_vertices(verts_cam, K)  # [B, V, 2]
    front_ok = (verts_cam[..., 2] > near)  # [B, V]
    fi = fragments.face_index
    depth = fragments.depth.detach()
    flat = color.reshape(B, H * W, C)
    delta = torch.zeros_like(flat)
    grid_i, grid_j = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    for di, dj in ((0, 1), (1, 0)):
        fp = fi[:, : H - di, : W - dj]
        fq = fi[:, di:, dj:]
        cand = fp != fq
        b, i, j = torch.nonzero(cand, as_tuple=True)
        if len(b) == 0:
            continue
        ip, jp, iq, jq = i, j, i + di, j + dj
        f_p, f_q = fi[b, ip, jp], fi[b, iq, jq]
        both = (f_p >= 0) & (f_q >= 0)
        # Triangles sharing an edge are one surface: no silhouette between them.
        tp = faces[f_p.clamp_min(0)]
        tq = faces[f_q.clamp_min(0)]
        shared = (tp[:, :, None] == tq[:, None, :]).any(-1).sum(-1) >= 2
        keep = ~(both & shared)
        # The occluder: the covered one when the other is background, else the nearer.
        p_front = (f_q < 0) | ((f_p >= 0) & (depth[b, ip, jp] <= depth[b, iq, jq]))
        b, ip, jp, iq, jq, p_front = (x[keep] for x in (b, ip, jp, iq, jq, p_front))
        if len(b) == 0:
            continue
        oi = torch.where(p_front, ip, iq)
        oj = torch.where(p_front, jp, jq)
        xi = torch.where(p_front, iq, ip)
        xj = torch.where(p_front, jq, jp)
        tri = faces[fi[b, oi, oj]]  # [P, 3]
        corners = uv[b[:, None], tri]  # [P, 3, 2]
        in_front = front_ok[b[:, None], tri].all(-1)
        po = torch.stack([oj, oi], -1).to(uv.dtype) + 0.5
        px = torch.stack([xj, xi], -1).to(uv.dtype) + 0.5
        a = corners
        e = torch.roll(corners, -1, dims=1) - a  # edges a->b, b->c, c->a
        opp = torch.roll(corners, -2, dims=1)  # the corner opposite each edge

        def edge_fn(p):  # [P, 2] -> [P, 3]
            r = p[:, None, :] - a
            return e[..., 0] * r[..., 1] - e[..., 1] * r[..., 0]

        ro = opp - a
        sign = torch.sign(e[..., 0] * ro[..., 1] - e[..., 1] * ro[..., 0])  # inside side per edge
        eo = edge_fn(po) * sign
        ex = edge_fn(px) * sign
        crossing = (eo >= 0) & (ex < 0)
        t_all = eo / (eo - ex).clamp_min(1e-12)
        t_all = torch.where(crossing, t_all, torch.full_like(t_all, 2.0))
        t, _ = t_all.min(-1)  # the first edge crossed leaving the occluder
        valid = (t <= 1.0) & in_front
        b, oi, oj, xi, xj, t = (x[valid] for x in (b, oi, oj, xi, xj, t))
        o_idx = oi * W + oj
        x_idx = xi * W + xj
        c_o = flat[b, o_idx]
        c_x = flat[b, x_idx]
        into_x = (t - 0.5).clamp_min(0)[:, None]
        into_o = (0.5 - t).clamp_min(0)[:, None]
        delta = delta.index_put((b, x_idx), into_x * (c_o - c_x), accumulate=True)
        delta = delta.index_put((b, o_idx), into_o * (c_x - c_o), accumulate=True)
    return (flat + delta).reshape(B, H, W, C)
