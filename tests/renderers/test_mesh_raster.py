"""Mesh rasterizer: behaviour per backend, fast path against the reference (forward and
gradients), silhouette gradients against finite differences, shading and textures."""

from __future__ import annotations

import math

import pytest
import torch

import renderers
from avatar.camera import Camera, look_at
from renderers.mesh import (
    antialias,
    interpolate,
    interpolate_corners,
    named_lighting,
    rasterize_mesh,
    render_mesh,
    sample_texture,
    sh_irradiance,
)
from renderers.mesh._common import to_camera

BACKENDS = ["reference", "cpu", pytest.param("nvdiffrast", marks=pytest.mark.skipif(
    not renderers.has_cuda(), reason="nvdiffrast needs a CUDA device (capability check)"))]


def camera(size=(32, 24), fov=60.0, eye=(0.0, 0.0, 0.0), target=(0.0, 0.0, 1.0), dtype=torch.float64):
    """OpenCV camera at ``eye`` looking at ``target`` (y down in the image)."""
    w2c = look_at(torch.tensor(eye, dtype=dtype), torch.tensor(target, dtype=dtype),
                  torch.tensor([0.0, -1.0, 0.0], dtype=dtype))
    return Camera.from_fov(fov, size[0], size[1], w2c)


def identity_camera(W=32, H=24, f=30.0, dtype=torch.float64):
    K = torch.tensor([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]], dtype=dtype)
    return Camera(K=K, world_to_camera=torch.eye(4, dtype=dtype), width=W, height=H)


def _check_single_triangle(backend):
    cam = identity_camera()
    # A triangle 2 m in front whose outward normal (right-handed winding) faces the camera.
    v = torch.tensor([[-0.5, 0.4, 2.0], [0.5, 0.4, 2.0], [0.0, -0.4, 2.0]], dtype=torch.float64)
    f = torch.tensor([[0, 1, 2]])
    fr = rasterize_mesh(v, f, cam, backend=backend)
    assert fr.face_index.shape == (1, 24, 32)
    # Pixel centres inside the projected triangle are covered, the others are not.
    px = v[:, :2] / v[:, 2:] * 30 + torch.tensor([16.0, 12.0], dtype=torch.float64)
    jj, ii = torch.meshgrid(torch.arange(32) + 0.5, torch.arange(24) + 0.5, indexing="xy")
    p = torch.stack([jj, ii], -1).double()

    def edge(a, b):
        return (b[0] - a[0]) * (p[..., 1] - a[1]) - (b[1] - a[1]) * (p[..., 0] - a[0])

    e = torch.stack([edge(px[0], px[2]), edge(px[2], px[1]), edge(px[1], px[0])])
    inside = (e > 1e-9).all(0) | (e < -1e-9).all(0)
    on_edge = (e.abs() <= 1e-9).any(0)
    got = fr.mask[0]
    assert bool((got[inside]).all()) and not bool((got[~inside & ~on_edge]).any())
    assert torch.allclose(fr.depth[0][got], torch.full_like(fr.depth[0][got], 2.0))
    # Barycentrics reproduce the pixel position.
    bary = fr.bary[0][got]
    pts = bary @ px
    torch.testing.assert_close(pts, p[got], atol=1e-9, rtol=0)
    # Back-face culling drops it when it is seen from behind.
    culled = rasterize_mesh(v, f[:, [0, 2, 1]], cam, cull_backfaces=True, backend=backend)
    assert not bool(culled.mask.any())
    kept = rasterize_mesh(v, f, cam, cull_backfaces=True, backend=backend)
    assert torch.equal(kept.mask, fr.mask)


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_triangle(backend):
    _check_single_triangle(backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nearer_triangle_wins_and_ties_go_to_smaller_index(backend):
    cam = identity_camera()
    quad = torch.tensor([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], dtype=torch.float64)
    far = quad + torch.tensor([0, 0, 3.0], dtype=torch.float64)
    near = quad * 0.3 + torch.tensor([0, 0, 2.0], dtype=torch.float64)
    v = torch.cat([far, near, far])  # a far quad, a near small quad, the far quad again
    f = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7], [8, 9, 10], [8, 10, 11]])
    fr = rasterize_mesh(v, f, cam, backend=backend)
    centre = fr.face_index[0, 12, 16]
    assert int(centre) in (2, 3)
    corner = fr.face_index[0, 12, 8]  # inside the far quad only
    assert int(corner) in (0, 1)  # the duplicate far quad (4, 5) loses the depth tie


def random_scene(n=60, seed=0, dtype=torch.float64):
    """Many overlapping triangles: some behind the camera, some crossing the near plane,
    some off-screen, both windings."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(n, 1, 3, generator=g, dtype=dtype) * torch.tensor([3.0, 2.4, 3.0], dtype=dtype) \
        - torch.tensor([1.5, 1.2, 0.2], dtype=dtype)
    v = (centres + 0.5 * torch.randn(n, 3, 3, generator=g, dtype=dtype)).reshape(-1, 3)
    f = torch.arange(3 * n).reshape(n, 3)
    return v, f


def test_scene_has_the_hard_cases():
    v, f = random_scene()
    z = v[f][..., 2]
    assert bool(((z.min(1).values < 0.01) & (z.max(1).values > 0.01)).any())  # crosses the near plane
    assert bool((z.max(1).values < 0).any())  # fully behind


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("batch", [1, 2])
def test_fast_path_matches_reference(seed, batch):
    v, f = random_scene(seed=seed)
    cams = identity_camera(W=48, H=40)
    verts = torch.stack([v + 0.1 * k for k in range(batch)]).requires_grad_()
    ref = rasterize_mesh(verts, f, cams, backend="reference")
    fast = rasterize_mesh(verts, f, cams, backend="cpu")
    assert torch.equal(ref.face_index, fast.face_index)
    assert 0.2 < float(ref.mask.float().mean()) < 0.99  # the scene covers part of the image
    torch.testing.assert_close(fast.bary, ref.bary)
    torch.testing.assert_close(fast.depth, ref.depth)
    g = torch.randn_like(ref.bary)
    gz = torch.randn_like(ref.depth)
    (g_ref,) = torch.autograd.grad((ref.bary * g).sum() + (ref.depth * gz).sum(), verts)
    (g_fast,) = torch.autograd.grad((fast.bary * g).sum() + (fast.depth * gz).sum(), verts)
    torch.testing.assert_close(g_fast, g_ref)


def test_ict_head_fast_matches_reference(ict_model):
    cam = camera(size=(96, 96), fov=25.0, eye=(0.05, 0.02, 0.6), target=(0.0, 0.0, 0.0))
    cam = Camera(K=cam.K, world_to_camera=look_at(torch.tensor([0.05, 0.02, 0.6], dtype=torch.float64),
                 torch.zeros(3, dtype=torch.float64), torch.tensor([0, 1.0, 0], dtype=torch.float64)),
                 width=96, height=96)
    v = ict_model.template.double()
    ref = rasterize_mesh(v, ict_model.faces, cam, backend="reference")
    fast = rasterize_mesh(v, ict_model.faces, cam, backend="cpu")
    assert torch.equal(ref.face_index, fast.face_index)
    assert float(ref.mask.float().mean()) > 0.4


def test_barycentrics_gradcheck():
    v, f = random_scene(n=4, seed=3)
    cam = identity_camera(W=12, H=10, f=8.0)
    fr = rasterize_mesh(v, f, cam, backend="cpu")
    assert bool(fr.mask.any())
    idx = fr.face_index

    def fn(verts):
        from renderers.mesh._common import differentiable_fragments, pixel_rays

        vc = to_camera(verts[None], cam.world_to_camera[None])
        out = differentiable_fragments(idx, vc, f, pixel_rays(cam.K[None], 10, 12))
        return out.bary, out.depth

    assert torch.autograd.gradcheck(fn, (v.clone().requires_grad_(),), eps=1e-6, atol=1e-5)


def disc_scene(offset: torch.Tensor, n=24, radius=0.5, z=2.0):
    ang = torch.arange(n, dtype=torch.float64) * 2 * math.pi / n
    rim = torch.stack([radius * torch.cos(ang), radius * torch.sin(ang), torch.full_like(ang, z)], -1)
    centre = torch.tensor([[0.0, 0.0, z]], dtype=torch.float64)
    v = torch.cat([centre, rim]) + offset
    f = torch.stack([torch.zeros(n, dtype=torch.long), 1 + (torch.arange(n) + 1) % n, 1 + torch.arange(n)], -1)
    return v, f


def test_silhouette_gradient_matches_finite_differences():
    """Antialiasing makes the image a continuous function of the silhouette: the
    gradient w.r.t. moving a white disc over black matches central differences."""
    cam = identity_camera(W=40, H=32, f=30.0)
    weights = torch.randn(1, 32, 40, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(5))

    def loss(offset):
        v, f = disc_scene(offset)
        out = render_mesh(v, f, cam, vertex_colors=torch.ones_like(v), sh=named_lighting("ambient").double(),
                          backend="cpu")
        return (out.alpha[..., None] * weights).sum()

    offset = torch.tensor([0.013, -0.021, 0.0], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(loss(offset), offset)
    eps = 1e-4
    for k in range(2):
        d = torch.zeros(3, dtype=torch.float64)
        d[k] = eps
        fd = (loss(offset.detach() + d) - loss(offset.detach() - d)) / (2 * eps)
        assert abs(float(grad[k]) - float(fd)) < 0.05 * abs(float(fd)) + 0.02, (k, float(grad[k]), float(fd))
        assert abs(float(fd)) > 0.1  # the test measures something


def test_antialias_alpha_is_coverage():
    """At a straight vertical edge the antialiased alpha of the two pixels next to it
    is the fraction of the pixel the surface covers."""
    cam = identity_camera(W=20, H=10, f=10.0)
    x_edge = 0.47  # the edge sits at pixel coordinate 10 + 0.47 * 10 / 2 = 12.35 for z = 2
    v = torch.tensor([[-5, -5, 2.0], [x_edge, -5, 2.0], [x_edge, 5, 2.0], [-5, 5, 2.0]], dtype=torch.float64)
    f = torch.tensor([[0, 1, 2], [0, 2, 3]])
    out = render_mesh(v, f, cam, backend="cpu")
    row = out.alpha[0, 5]
    u = 10 + x_edge * 10 / 2.0
    for j in range(20):  # box-filter coverage of pixel j, whose extent is [j, j+1]
        expected = min(max(u - j, 0.0), 1.0)
        # The analytic blend equals box coverage within a quarter pixel of the edge's side.
        assert abs(float(row[j]) - expected) < 0.26, (j, float(row[j]), expected)
    assert float(row[12]) == pytest.approx(u - 12, abs=1e-9)


def test_sh_irradiance_matches_numerical_integration():
    sh = named_lighting("studio").double()
    n = torch.nn.functional.normalize(torch.tensor([[0.3, 0.5, 0.8], [-1.0, 0.2, 0.1]], dtype=torch.float64), dim=-1)
    # E(n) = integral over the sphere of L(w) max(0, n.w) dw, with L(w) = sum L_lm Y_lm(w).
    from renderers.mesh.shading import sh_basis

    g = torch.Generator().manual_seed(0)
    w = torch.nn.functional.normalize(torch.randn(400_000, 3, generator=g, dtype=torch.float64), dim=-1)
    L = sh_basis(w) @ sh  # [N, 3]
    E_mc = (L[:, None, :] * (w @ n.T).clamp_min(0)[..., None]).mean(0) * 4 * math.pi
    torch.testing.assert_close(sh_irradiance(n, sh), E_mc, atol=0.02, rtol=0.02)
    # A uniform sky of radiance 1 shades any albedo to itself.
    out = render_mesh(*disc_scene(torch.zeros(3, dtype=torch.float64)), identity_camera(),
                      vertex_colors=torch.full((25, 3), 0.3, dtype=torch.float64),
                      sh=named_lighting("ambient").double(), antialiased=False, backend="cpu")
    torch.testing.assert_close(out.image[out.fragments.mask], torch.full_like(out.image[out.fragments.mask], 0.3))


def test_texture_sampling_and_seams():
    tex = torch.arange(12, dtype=torch.float64).reshape(3, 4, 1)
    # Texel centres return texel values; halfway between two texels gives the mean.
    uv = torch.tensor([[[[0.125, 1 - 1 / 6], [0.25, 1 - 1 / 6], [0.875, 1 / 6]]]], dtype=torch.float64)
    out = sample_texture(tex, uv)[0, 0, :, 0]
    torch.testing.assert_close(out, torch.tensor([0.0, 0.5, 11.0], dtype=torch.float64))
    uvg = uv.clone().requires_grad_()
    texg = tex.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda t, u: sample_texture(t, u), (texg, uvg + 0.01))
    # Per-corner UVs: two triangles sharing an edge but not UVs (a seam) keep their own.
    cam = identity_camera(W=16, H=8, f=8.0)
    v = torch.tensor([[-2, -2, 2.0], [2, -2, 2.0], [2, 2, 2.0], [-2, 2, 2.0]], dtype=torch.float64)
    f = torch.tensor([[0, 1, 2], [0, 2, 3]])
    corner_uv = torch.tensor([[[0.1, 0.1], [0.1, 0.1], [0.1, 0.1]], [[0.9, 0.9], [0.9, 0.9], [0.9, 0.9]]],
                             dtype=torch.float64)
    fr = rasterize_mesh(v, f, cam, backend="cpu")
    uvs = interpolate_corners(corner_uv, fr)
    assert set(uvs[fr.mask][:, 0].round(decimals=6).tolist()) == {0.1, 0.9}
    cols = interpolate(torch.eye(4, dtype=torch.float64)[:, :3], f, fr)
    assert torch.allclose(cols[fr.mask].sum(-1) + interpolate(torch.eye(4, dtype=torch.float64)[:, 3:], f, fr)[fr.mask][:, 0],
                          torch.ones(int(fr.mask.sum()), dtype=torch.float64))


def test_bad_input_raises():
    cam = identity_camera()
    v = torch.zeros(3, 3)
    with pytest.raises(ValueError, match=r"\[F, 3\]"):
        rasterize_mesh(v, torch.tensor([0, 1, 2]), cam)
    with pytest.raises(ValueError, match="outside"):
        rasterize_mesh(v, torch.tensor([[0, 1, 5]]), cam)
    with pytest.raises(ValueError, match="near"):
        rasterize_mesh(v, torch.tensor([[0, 1, 2]]), cam, near=0.0)
    with pytest.raises(ValueError, match="backend"):
        rasterize_mesh(v, torch.tensor([[0, 1, 2]]), cam, backend="opengl")
    with pytest.raises(ValueError, match=r"\[\.\.\., 9, 3\]"):
        sh_irradiance(torch.zeros(2, 3), torch.zeros(4, 3))


def test_antialias_passes_colour_gradients():
    v, f = disc_scene(torch.zeros(3, dtype=torch.float64))
    cam = identity_camera()
    fr = rasterize_mesh(v, f, cam, backend="cpu")
    col = torch.rand(1, 24, 32, 3, dtype=torch.float64, requires_grad=True)
    out = antialias(col, fr, to_camera(v[None], cam.world_to_camera[None]), f, cam.K[None])
    (g,) = torch.autograd.grad(out.sum(), col)
    torch.testing.assert_close(g.sum(), torch.tensor(float(col.numel()), dtype=torch.float64))  # blends conserve weight


def test_render_gradients_to_light_texture_and_colours():
    """Finite-difference checks (float64) of render_mesh w.r.t. SH light, texture and
    vertex colours, with specular on and antialiasing at the silhouette."""
    cam = identity_camera(W=14, H=12, f=10.0)
    v, f = disc_scene(torch.tensor([0.05, -0.03, 0.0], dtype=torch.float64), n=8)
    v = v + torch.stack([torch.zeros(9), torch.zeros(9), 0.2 * torch.linspace(-1, 1, 9)], -1).double()
    uvs = (v[:, :2] + 0.5).clamp(0, 1)
    g = torch.Generator().manual_seed(0)
    sh = (named_lighting("studio").double() + 0.05 * torch.randn(9, 3, generator=g, dtype=torch.float64))
    tex = torch.rand(4, 4, 3, generator=g, dtype=torch.float64)
    cols = torch.rand(9, 3, generator=g, dtype=torch.float64)

    def by_light(light):
        return render_mesh(v, f, cam, vertex_colors=cols, sh=light, specular=0.3, backend="cpu").image

    def by_texture(t):
        return render_mesh(v, f, cam, texture=t, uvs=uvs, face_uvs=f, sh=sh, backend="cpu").image

    def by_colour(c):
        return render_mesh(v, f, cam, vertex_colors=c, sh=sh, backend="cpu").image

    assert torch.autograd.gradcheck(by_light, (sh.requires_grad_(),), atol=1e-6)
    assert torch.autograd.gradcheck(by_texture, (tex.requires_grad_(),), atol=1e-6)
    assert torch.autograd.gradcheck(by_colour, (cols.requires_grad_(),), atol=1e-6)
