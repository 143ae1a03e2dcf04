"""Tests of avatar.camera: look_at, projection, pixel-centre convention, OpenGL and gsplat converters."""

from __future__ import annotations

import math

import pytest
import torch
from tests.conftest import TOLERANCES

from avatar.camera import (
    Camera,
    camera_center,
    intrinsics,
    intrinsics_from_opencv,
    intrinsics_to_opencv,
    look_at,
    ndc_to_pixels,
    opencv_to_opengl_view,
    opengl_projection,
    project,
    to_gsplat,
)

BATCH_DIMS = [(), (2,), (1, 2)]
TOL64 = TOLERANCES[torch.float64]


def _random_cameras(batch: tuple[int, ...], dtype=torch.float64, seed: int = 0) -> Camera:
    """Cameras around the origin, looking at it, with off-centre principal points and skew."""
    g = torch.Generator().manual_seed(seed)
    eye = torch.randn(*batch, 3, generator=g, dtype=dtype)
    eye = 2.0 * eye / eye.norm(dim=-1, keepdim=True)
    target = 0.1 * torch.randn(*batch, 3, generator=g, dtype=dtype)
    up = torch.tensor([0.0, 1.0, 0.0], dtype=dtype).expand(*batch, 3)
    fx = 400 + 50 * torch.rand(batch, generator=g, dtype=dtype)
    fy = 380 + 50 * torch.rand(batch, generator=g, dtype=dtype)
    cx = 150 + 20 * torch.rand(batch, generator=g, dtype=dtype)
    cy = 110 + 20 * torch.rand(batch, generator=g, dtype=dtype)
    K = intrinsics(fx, fy, cx, cy).clone()
    K[..., 0, 1] = 3.0  # skew
    return Camera(K=K, world_to_camera=look_at(eye, target, up), width=320, height=240)


def _points(batch: tuple[int, ...], n: int = 5, dtype=torch.float64, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(*batch, n, 3, generator=g, dtype=dtype)


# --- smoke and shapes ----------------------------------------------------------------------------


def test_from_fov_smoke():
    camera = Camera.from_fov(60.0, 640, 480)
    assert camera.K.shape == (3, 3) and camera.world_to_camera.shape == (4, 4)
    assert camera.batch_shape == ()
    # Centred principal point: exactly half the image size in the half-integer convention.
    assert camera.K[0, 2].item() == 320.0 and camera.K[1, 2].item() == 240.0
    focal = 240.0 / math.tan(math.radians(30.0))
    torch.testing.assert_close(camera.K[0, 0], torch.tensor(focal), **TOLERANCES[torch.float32])
    torch.testing.assert_close(camera.fov_y, torch.tensor(60.0), **TOLERANCES[torch.float32])
    expected_fov_x = 2 * math.degrees(math.atan(320.0 / focal))
    torch.testing.assert_close(camera.fov_x, torch.tensor(expected_fov_x), **TOLERANCES[torch.float32])
    torch.testing.assert_close(camera.world_to_camera, torch.eye(4))


@pytest.mark.parametrize("batch", BATCH_DIMS)
def test_from_fov_batched(batch):
    fov = torch.full(batch, 45.0, dtype=torch.float64)
    camera = Camera.from_fov(fov, 100, 80)
    assert camera.K.shape == (*batch, 3, 3)
    assert camera.world_to_camera.shape == (*batch, 4, 4)
    torch.testing.assert_close(camera.fov_y, fov, **TOL64)


@pytest.mark.parametrize("batch", BATCH_DIMS)
def test_project_output_shapes(batch):
    camera = _random_cameras(batch)
    result = project(_points(batch, n=7), camera)
    assert result.pixels.shape == (*batch, 7, 2)
    assert result.depth.shape == (*batch, 7)
    assert result.valid.shape == (*batch, 7) and result.valid.dtype == torch.bool


def test_project_broadcasts_one_camera_over_point_batches():
    camera = _random_cameras(())
    points = _points((3,))
    batched = project(points, camera).pixels
    for i in range(3):
        torch.testing.assert_close(batched[i], project(points[i], camera).pixels, **TOL64)


# --- bad input raises ----------------------------------------------------------------------------


def test_bad_shapes_raise():
    K, w2c = torch.eye(3), torch.eye(4)
    with pytest.raises(ValueError, match=r"K \[\.\.\., 3, 3\]"):
        Camera(K=torch.eye(4), world_to_camera=w2c, width=10, height=10)
    with pytest.raises(ValueError, match=r"world_to_camera \[\.\.\., 4, 4\]"):
        Camera(K=K, world_to_camera=torch.eye(3), width=10, height=10)
    with pytest.raises(ValueError, match="broadcastable"):
        Camera(K=K.expand(2, 3, 3), world_to_camera=w2c.expand(3, 4, 4), width=10, height=10)
    with pytest.raises(ValueError, match="width"):
        Camera(K=K, world_to_camera=w2c, width=0, height=10)
    with pytest.raises(TypeError, match="height"):
        Camera(K=K, world_to_camera=w2c, width=10, height=10.5)
    camera = Camera(K=K, world_to_camera=w2c, width=10, height=10)
    with pytest.raises(ValueError, match=r"points_world \[\.\.\., N, 3\]"):
        project(torch.zeros(5, 2), camera)
    with pytest.raises(ValueError, match=r"points_world \[\.\.\., N, 3\]"):
        project(torch.zeros(3), camera)
    with pytest.raises(ValueError, match=r"eye \[\.\.\., 3\]"):
        look_at(torch.zeros(2), torch.ones(3), torch.ones(3))
    with pytest.raises(ValueError, match=r"\[\.\.\., 4, 4\]"):
        camera_center(torch.eye(3))
    with pytest.raises(ValueError, match=r"\[\.\.\., 4, 4\]"):
        opencv_to_opengl_view(torch.eye(3))
    with pytest.raises(ValueError, match="near"):
        opengl_projection(camera, near=1.0, far=0.5)
    with pytest.raises(ValueError, match="fov_y_degrees"):
        Camera.from_fov(180.0, 10, 10)


def test_look_at_degenerate_raises():
    with pytest.raises(ValueError, match="parallel"):
        look_at(torch.tensor([0.0, 0.0, 1.0]), torch.zeros(3), torch.tensor([0.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="eye == target"):
        look_at(torch.zeros(3), torch.zeros(3), torch.tensor([0.0, 1.0, 0.0]))


# --- numerical correctness -----------------------------------------------------------------------


@pytest.mark.parametrize("batch", BATCH_DIMS)
def test_look_at_points_z_at_target_and_target_lands_on_principal_point(batch):
    camera = _random_cameras(batch)
    w2c = camera.world_to_camera
    R = w2c[..., :3, :3]
    # A rotation: orthonormal, determinant +1, last row 0 0 0 1.
    eye3 = torch.eye(3, dtype=R.dtype).expand_as(R)
    torch.testing.assert_close(R @ R.transpose(-1, -2), eye3, **TOL64)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(batch, dtype=R.dtype), **TOL64)
    torch.testing.assert_close(w2c[..., 3, :], torch.tensor([0.0, 0, 0, 1], dtype=R.dtype).expand(*batch, 4))
    # Recover eye/target the way _random_cameras drew them.
    g = torch.Generator().manual_seed(0)
    eye = torch.randn(*batch, 3, generator=g, dtype=torch.float64)
    eye = 2.0 * eye / eye.norm(dim=-1, keepdim=True)
    target = 0.1 * torch.randn(*batch, 3, generator=g, dtype=torch.float64)
    direction = (target - eye) / (target - eye).norm(dim=-1, keepdim=True)
    torch.testing.assert_close(R[..., 2, :], direction, **TOL64)  # camera +z (world coords) points at target
    torch.testing.assert_close(camera.center, eye, **TOL64)
    result = project(target.unsqueeze(-2), camera)
    principal_point = camera.K[..., :2, 2]
    torch.testing.assert_close(result.pixels[..., 0, :], principal_point, **TOL64)
    torch.testing.assert_close(result.depth[..., 0], (target - eye).norm(dim=-1), **TOL64)
    assert bool(result.valid.all())


def test_look_at_up_is_image_up():
    """Camera in front of the face (model space +y up, +z out of the face)."""
    w2c = look_at(torch.tensor([0.0, 0.0, 1.0]), torch.zeros(3), torch.tensor([0.0, 1.0, 0.0]))
    camera = Camera.from_fov(60.0, 64, 48, w2c)
    pixels = project(torch.tensor([[0.0, 0.1, 0.0], [0.1, 0.0, 0.0]]), camera).pixels
    assert pixels[0, 1] < 24.0  # world up is image up (smaller row)
    assert pixels[1, 0] > 32.0  # world +x (the subject's left) is image right, seen from the front
    torch.testing.assert_close(w2c[:3, :3], torch.diag(torch.tensor([1.0, -1.0, -1.0])))


def test_project_matches_hand_computation():
    K = torch.tensor([[100.0, 0.0, 30.0], [0.0, 200.0, 40.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    # Rotation by +90 degrees about y (x_cam = z_world, z_cam = -x_world), then t = (0, 0, 2).
    w2c = torch.tensor(
        [[0.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 2.0], [0.0, 0.0, 0.0, 1.0]],
        dtype=torch.float64,
    )
    camera = Camera(K=K, world_to_camera=w2c, width=60, height=80)
    points = torch.tensor([[0.0, -0.2, 0.1], [1.0, 0.0, 0.0], [3.0, 0.0, 0.0]], dtype=torch.float64)
    result = project(points, camera)
    # Point 0: p_cam = (0.1, -0.2, 2) -> u = 100 * 0.1 / 2 + 30 = 35, v = 200 * -0.2 / 2 + 40 = 20.
    torch.testing.assert_close(result.pixels[0], torch.tensor([35.0, 20.0], dtype=torch.float64), **TOL64)
    torch.testing.assert_close(result.depth[0], torch.tensor(2.0, dtype=torch.float64), **TOL64)
    # Point 1: p_cam = (0, 0, 1): the principal point.
    torch.testing.assert_close(result.pixels[1], torch.tensor([30.0, 40.0], dtype=torch.float64), **TOL64)
    # Point 2 is behind the camera (z = -1): flagged, finite.
    assert result.valid.tolist() == [True, True, False]
    assert bool(torch.isfinite(result.pixels).all())


def test_pixel_centre_convention():
    """Pixel (row i, col j) has its centre at (j + 0.5, i + 0.5); the image spans [0, W] x [0, H]."""
    camera = Camera.from_fov(90.0, 4, 4)  # fx = fy = 2, c = (2, 2)
    # The ray through the top-left corner of the image, direction (-1, -1, 1) in camera space.
    corner = project(torch.tensor([[-1.0, -1.0, 1.0]]), camera).pixels[0]
    torch.testing.assert_close(corner, torch.tensor([0.0, 0.0]))
    centre_00 = project(torch.tensor([[-0.75, -0.75, 1.0]]), camera).pixels[0]
    torch.testing.assert_close(centre_00, torch.tensor([0.5, 0.5]))
    # intrinsics from OpenCV calibration (integer pixel centres) shift by half a pixel.
    K_cv = intrinsics_to_opencv(camera.K)
    torch.testing.assert_close(K_cv[:2, 2], torch.tensor([1.5, 1.5]))
    torch.testing.assert_close(intrinsics_from_opencv(K_cv), camera.K)


@pytest.mark.parametrize("batch", BATCH_DIMS)
def test_opengl_projection_matches_K(batch):
    camera = _random_cameras(batch)
    points = _points(batch, n=9)
    near, far = 0.5, 10.0
    P = opengl_projection(camera, near, far)  # [..., 4, 4]
    view = opencv_to_opengl_view(camera.world_to_camera)  # [..., 4, 4]
    homogeneous = torch.cat([points, torch.ones_like(points[..., :1])], dim=-1)
    clip = (P.unsqueeze(-3) @ view.unsqueeze(-3) @ homogeneous.unsqueeze(-1)).squeeze(-1)
    ndc = clip[..., :3] / clip[..., 3:]
    expected = project(points, camera)
    torch.testing.assert_close(ndc_to_pixels(ndc[..., :2], camera.width, camera.height), expected.pixels, **TOL64)
    torch.testing.assert_close(clip[..., 3], expected.depth, **TOL64)  # w_clip = OpenCV depth
    # OpenGL eye space looks down -z.
    eye_space = (view.unsqueeze(-3) @ homogeneous.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(eye_space[..., 2], -expected.depth, **TOL64)


def test_opengl_depth_range_and_fragment_centres():
    camera = Camera.from_fov(60.0, 8, 6, world_to_camera=torch.eye(4, dtype=torch.float64))
    P = opengl_projection(camera, near=0.25, far=4.0)
    for depth, ndc_z in ((0.25, -1.0), (4.0, 1.0)):
        clip = P @ torch.tensor([0.0, 0.0, -depth, 1.0], dtype=torch.float64)
        assert clip[2] / clip[3] == pytest.approx(ndc_z)
    # A point that projects on the centre of pixel (0, 0) lands on OpenGL's first fragment centre
    # of the top row: ndc = (-1 + 1/W, 1 - 1/H).
    fx, cx, cy = camera.K[0, 0], camera.K[0, 2], camera.K[1, 2]
    point_cv = torch.stack([(0.5 - cx) / fx, (0.5 - cy) / fx, torch.ones_like(fx)])
    point_gl = torch.cat([point_cv * torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64), torch.ones(1).double()])
    clip = P @ point_gl
    ndc = clip[:2] / clip[3]
    torch.testing.assert_close(ndc, torch.tensor([-1 + 1 / 8, 1 - 1 / 6], dtype=torch.float64), **TOL64)


def _gsplat_reference_means2d(means, viewmats, Ks):
    """gsplat's reference formulas (gsplat/cuda/_torch_impl.py: _world_to_cam, _persp_proj)."""
    R = viewmats[:, :3, :3]  # [C, 3, 3]
    t = viewmats[:, :3, 3]  # [C, 3]
    means_c = torch.einsum("cij,nj->cni", R, means) + t[:, None, :]  # [C, N, 3]
    means2d = torch.einsum("cij,cnj->cni", Ks[:, :2, :3], means_c)
    return means2d / means_c[..., 2:3], means_c[..., 2]


@pytest.mark.parametrize("batch", BATCH_DIMS)
def test_to_gsplat_matches_gsplat_conventions(batch):
    camera = _random_cameras(batch)
    cams = to_gsplat(camera)
    C = math.prod(batch)
    assert cams.viewmats.shape == (C, 4, 4) and cams.Ks.shape == (C, 3, 3)
    assert (cams.width, cams.height) == (camera.width, camera.height)
    means = _points((), n=11)
    means2d, depths = _gsplat_reference_means2d(means, cams.viewmats, cams.Ks)
    ours = project(means, camera)
    torch.testing.assert_close(means2d, ours.pixels.reshape(C, 11, 2), **TOL64)
    torch.testing.assert_close(depths, ours.depth.reshape(C, 11), **TOL64)


def test_to_gsplat_pixel_centres():
    """gsplat evaluates pixel (i, j) at (j + 0.5, i + 0.5): a point we project there is centred on it."""
    camera = Camera.from_fov(70.0, 16, 12, world_to_camera=torch.eye(4, dtype=torch.float64))
    cams = to_gsplat(camera)
    row, col = 2, 3
    fx, fy, cx, cy = camera.K[0, 0], camera.K[1, 1], camera.K[0, 2], camera.K[1, 2]
    point = torch.stack([(col + 0.5 - cx) / fx, (row + 0.5 - cy) / fy, torch.ones_like(fx)])[None]
    means2d, _ = _gsplat_reference_means2d(point, cams.viewmats, cams.Ks)
    pixel_centre = torch.tensor([col, row], dtype=torch.float64) + 0.5  # as gsplat's accumulate() samples
    torch.testing.assert_close(means2d[0, 0], pixel_centre, **TOL64)


def test_to_gsplat_against_installed_gsplat():
    gsplat_impl = pytest.importorskip("gsplat.cuda._torch_impl", reason="gsplat is not installed (extra 'cuda')")
    camera = _random_cameras((2,), dtype=torch.float32)
    cams = to_gsplat(camera)
    means = _points((), n=4, dtype=torch.float32)
    covars = torch.eye(3).expand(4, 3, 3) * 1e-4
    means_c, covars_c = gsplat_impl._world_to_cam(means, covars, cams.viewmats)
    means2d, _ = gsplat_impl._persp_proj(means_c, covars_c, cams.Ks, cams.width, cams.height)
    torch.testing.assert_close(means2d, project(means, camera).pixels, **TOLERANCES[torch.float32])


def test_opencv_to_opengl_view_keeps_camera_centre():
    camera = _random_cameras((3,))
    view = opencv_to_opengl_view(camera.world_to_camera)
    torch.testing.assert_close(camera_center(view), camera.center, **TOL64)
    torch.testing.assert_close(opencv_to_opengl_view(view), camera.world_to_camera)  # an involution


# --- gradients -----------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", BATCH_DIMS)
def test_project_gradcheck(batch):
    camera = _random_cameras(batch)
    K = camera.K.clone().requires_grad_(True)
    w2c = camera.world_to_camera.clone().requires_grad_(True)
    points = _points(batch, n=3).requires_grad_(True)

    def pixels(points, K, w2c):
        return project(points, Camera(K=K, world_to_camera=w2c, width=320, height=240)).pixels

    assert torch.autograd.gradcheck(pixels, (points, K, w2c))


def test_gradients_finite_behind_camera_and_through_look_at_and_fov():
    eye = torch.tensor([0.0, 0.0, 1.5], requires_grad=True)
    fov = torch.tensor(50.0, requires_grad=True)
    w2c = look_at(eye, torch.zeros(3), torch.tensor([0.0, 1.0, 0.0]))
    camera = Camera.from_fov(fov, 64, 48, w2c)
    points = torch.tensor([[0.1, 0.0, 0.0], [0.0, 0.0, 1.5], [0.0, 0.0, 3.0]])  # in front, at, behind the eye
    result = project(points, camera)
    assert result.valid.tolist() == [True, False, False]
    result.pixels.sum().backward()
    assert torch.isfinite(eye.grad).all() and torch.isfinite(fov.grad).all()
    assert fov.grad.abs() > 0
