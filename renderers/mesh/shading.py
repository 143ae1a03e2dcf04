"""Shading: vertex normals, second-order spherical-harmonics lighting (9 coefficients
per colour channel), Lambert diffuse and an optional Blinn-Phong specular lobe.

SH convention: real SH basis in the order (l, m) = (0,0), (1,-1), (1,0), (1,1), (2,-2),
(2,-1), (2,0), (2,1), (2,2) evaluated on unit directions (x, y, z) of world/model space
(+y up). Coefficients are *radiance* coefficients L_lm [..., 9, 3]; the irradiance of a
normal n is E(n) = sum_lm A_l L_lm Y_lm(n) with A = (pi, 2 pi / 3, pi / 4) (Ramamoorthi &
Hanrahan 2001), and Lambert's diffuse colour is albedo * E / pi. A uniform white sky of
radiance 1 is ``L_00 = 1 / Y_00 = 3.5449``: it shades any albedo to itself.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

Y00 = 0.5 / math.sqrt(math.pi)
Y1 = math.sqrt(3.0 / (4 * math.pi))
Y2 = 0.5 * math.sqrt(15.0 / math.pi)
Y20 = 0.25 * math.sqrt(5.0 / math.pi)
Y22 = 0.25 * math.sqrt(15.0 / math.pi)
BAND_FACTOR = (math.pi, 2 * math.pi / 3, 2 * math.pi / 3, 2 * math.pi / 3,
               math.pi / 4, math.pi / 4, math.pi / 4, math.pi / 4, math.pi / 4)


def sh_basis(directions: Tensor) -> Tensor:  # [..., 3] -> [..., 9]
    """The 9 real SH basis functions at unit directions."""
    x, y, z = directions.unbind(-1)
    one = torch.ones_like(x)
    return torch.stack([
        Y00 * one, Y1 * y, Y1 * z, Y1 * x,
        Y2 * x * y, Y2 * y * z, Y20 * (3 * z * z - 1), Y2 * x * z, Y22 * (x * x - y * y),
    ], -1)


def sh_irradiance(
    normals: Tensor,  # [..., 3] unit
    sh: Tensor,  # [9, 3] or broadcastable [..., 9, 3] radiance coefficients
) -> Tensor:  # [..., 3]
    """Irradiance E(n) for SH radiance coefficients (see the module docstring)."""
    if sh.shape[-2:] != (9, 3):
        raise ValueError(f"expected SH coefficients [..., 9, 3]; got {tuple(sh.shape)}")
    A = torch.tensor(BAND_FACTOR, dtype=normals.dtype)
    basis = sh_basis(normals) * A  # [..., 9]
    return (basis[..., :, None] * sh.to(normals.dtype)).sum(-2)


def vertex_normals(
    vertices: Tensor,  # [..., V, 3]
    faces: Tensor,  # [F, 3]
) -> Tensor:  # [..., V, 3]
    """Area-weighted vertex normals (counter-clockwise faces point outward), unit length."""
    a, b, c = (vertices[..., faces[:, k], :] for k in range(3))
    fn = torch.linalg.cross(b - a, c - a, dim=-1)  # [..., F, 3], length = 2 x area
    n = torch.zeros_like(vertices)
    for k in range(3):
        n = n.index_add(-2, faces[:, k], fn)
    return torch.nn.functional.normalize(n, dim=-1, eps=1e-12)


def dominant_light(sh: Tensor) -> tuple[Tensor, Tensor]:  # direction [..., 3], radiance [..., 3]
    """Direction and colour of the light the linear SH band describes (for the specular lobe).

    Direction: the luminance-weighted band-1 vector; colour: each channel's band-1 norm
    times Y1 (the peak radiance a single lobe with that band-1 energy has, to first order).
    """
    band1 = sh[..., 1:4, :]  # [..., 3 (y, z, x), C]
    vec = torch.stack([band1[..., 2, :], band1[..., 0, :], band1[..., 1, :]], -2)  # [..., xyz, C]
    direction = torch.nn.functional.normalize(vec.mean(-1), dim=-1, eps=1e-12)
    colour = vec.norm(dim=-2) * Y1
    return direction, colour


def shade(
    albedo: Tensor,  # [..., 3]
    normals: Tensor,  # [..., 3] unit, world space
    view: Tensor,  # [..., 3] unit, from the surface toward the camera
    sh: Tensor,  # [..., 9, 3], leading dims broadcastable with the others'
    specular: float | Tensor = 0.0,
    shininess: float = 32.0,
) -> Tensor:  # [..., 3]
    """Lambert diffuse under SH light, plus ``specular`` x Blinn-Phong lobe of the dominant light."""
    colour = albedo * sh_irradiance(normals, sh) / math.pi
    if not (isinstance(specular, (int, float)) and specular == 0):
        direction, light = dominant_light(sh)
        h = torch.nn.functional.normalize(view + direction, dim=-1, eps=1e-12)
        ndh = (normals * h).sum(-1, keepdim=True).clamp_min(0)
        lit = ((normals * direction).sum(-1, keepdim=True) > 0).to(normals.dtype)
        norm = (shininess + 8) / (8 * math.pi)  # energy-normalized Blinn-Phong
        colour = colour + specular * norm * ndh.pow(shininess) * light * lit
    return colour


def named_lighting(name: str, intensity: float = 1.0) -> Tensor:  # [9, 3]
    """A few SH environments for previews: ``front``, ``studio`` (key from upper left),
    ``side`` (hard light from the subject's right), ``ambient``."""
    def lobe(direction, radiance, sharp=1.0):
        d = torch.nn.functional.normalize(torch.tensor(direction, dtype=torch.float64), dim=0)
        # Projection of a clamped-cosine lobe of the given radiance onto SH.
        y = sh_basis(d)
        band = torch.tensor([1.0, 2 / 3, 2 / 3, 2 / 3, 0.25, 0.25, 0.25, 0.25, 0.25], dtype=torch.float64) * sharp
        return (y * band)[:, None] * torch.tensor(radiance, dtype=torch.float64)[None] * math.pi

    ambient = lambda r: torch.zeros(9, 3, dtype=torch.float64).index_put_(  # noqa: E731
        (torch.tensor([0]),), torch.tensor([r], dtype=torch.float64) / Y00)
    if name == "ambient":
        sh = ambient([1.0, 1.0, 1.0])
    elif name == "front":
        sh = ambient([0.35, 0.35, 0.35]) + lobe([0.0, 0.2, 1.0], [0.75, 0.75, 0.75])
    elif name == "studio":
        sh = ambient([0.25, 0.26, 0.3]) + lobe([-0.6, 0.6, 0.8], [0.95, 0.9, 0.82]) + lobe([0.8, 0.1, 0.4], [0.2, 0.22, 0.3])
    elif name == "side":
        sh = ambient([0.12, 0.12, 0.14]) + lobe([-1.0, 0.15, 0.25], [1.1, 1.0, 0.9])
    else:
        raise ValueError(f"unknown lighting {name!r}: use front, studio, side or ambient")
    return (sh * intensity).float()
