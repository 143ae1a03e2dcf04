"""Bilinear texture sampling, differentiable w.r.t. the texture and the UVs."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor


def sample_texture(
    texture: Tensor,  # [Ht, Wt, C] or [B, Ht, Wt, C]
    uv: Tensor,  # [B, H, W, 2] OBJ convention: u right, v up, origin bottom-left
    wrap: Literal["clamp", "repeat"] = "clamp",
) -> Tensor:  # [B, H, W, C]
    """Bilinear lookup; texel (r, c) has its centre at u = (c + 0.5) / Wt, v = 1 - (r + 0.5) / Ht.

    UV seams need no special care here: UVs interpolated per triangle corner
    (``interpolate_corners``) never blend across a seam.
    """
    tex = texture if texture.ndim == 4 else texture[None]
    if tex.ndim != 4 or uv.shape[-1] != 2 or uv.ndim != 4:
        raise ValueError(f"expected texture [B, Ht, Wt, C] or [Ht, Wt, C] and uv [B, H, W, 2]; "
                         f"got {tuple(texture.shape)}, {tuple(uv.shape)}")
    B = uv.shape[0]
    tex = tex.expand(B, *tex.shape[1:])
    _, Ht, Wt, C = tex.shape
    x = uv[..., 0] * Wt - 0.5
    y = (1 - uv[..., 1]) * Ht - 0.5
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    x0, y0 = x0.long(), y0.long()

    def fix(i, n):
        return i.remainder(n) if wrap == "repeat" else i.clamp(0, n - 1)

    flat = tex.reshape(B, Ht * Wt, C)

    def at(yy, xx):
        idx = (fix(yy, Ht) * Wt + fix(xx, Wt)).reshape(B, -1, 1).expand(B, -1, C)
        return torch.gather(flat, 1, idx).reshape(*uv.shape[:-1], C)

    top = at(y0, x0) * (1 - fx) + at(y0, x0 + 1) * fx
    bottom = at(y0 + 1, x0) * (1 - fx) + at(y0 + 1, x0 + 1) * fx
    return top * (1 - fy) + bottom * fy
