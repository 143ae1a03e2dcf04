"""The built-in model: ships in the package, and each of its 52 ARKit shapes does what
its name says (measured on landmarks, not looked at)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avatar.facemodel import ARKIT_NAMES, load
from avatar.facemodel.landmarks import mirror_pairs


@pytest.fixture(scope="module")
def model():
    return load("builtin")


def lm(model, expression=None, scheme="ibug68"):
    e = torch.zeros(model.num_expression)
    for name, w in (expression or {}).items():
        e[model.expression_index(name)] = w
    return model.landmarks_3d(model.vertices(expression=e), scheme)


def test_shape_and_names(model):
    assert model.expression_names == ARKIT_NAMES and model.arkit
    assert model.units == "metres"
    V = model.num_vertices
    assert model.expression_basis.shape == (V, 3, 52)
    assert model.identity_basis.shape[:2] == (V, 3) and model.identity_basis.shape[2] >= 20
    assert set(model.landmarks) == {"ibug68", "mediapipe478"}
    assert len(model.landmarks["ibug68"]) == 68 and len(model.landmarks["mediapipe478"]) == 478
    for name in ("face", "lips", "eyes", "scalp", "neck"):
        assert model.regions[name].shape == (V,)
    # Metric: inter-pupillary distance 63 mm, face about 12-16 cm wide at the cheeks.
    mp = lm(model, scheme="mediapipe478")
    assert abs(float((mp[468] - mp[473]).norm()) - 0.063) < 1e-3
    width = float(model.template[:468, 0].max() - model.template[:468, 0].min())
    assert 0.12 < width < 0.17


def test_mediapipe_vertices_are_mediapipe_order(model):
    pts = lm(model, scheme="mediapipe478")[:468]
    torch.testing.assert_close(pts, model.template[:468])
    # MediaPipe's named points: 1/4 nose tip (most forward), 152 chin (lowest of the face
    # mesh), 33/263 the right/left outer eye corners.
    face = model.template[:468]
    assert int(face[:, 2].argmax()) in (1, 4)  # both on the tip of the nose
    assert int(face[:, 1].argmin()) == 152
    assert face[263, 0] > 0 > face[33, 0]


# name -> (landmark index (iBUG-68, or "mp:N" for MediaPipe-478), direction, minimum mm)
UP, DOWN, LEFT, RIGHT, FORWARD, BACK = (0, 1, 0), (0, -1, 0), (1, 0, 0), (-1, 0, 0), (0, 0, 1), (0, 0, -1)
EXPECT = {
    "jawOpen": (8, DOWN, 15), "jawForward": (8, FORWARD, 4), "jawLeft": (8, LEFT, 4), "jawRight": (8, RIGHT, 4),
    "mouthLeft": (62, LEFT, 5), "mouthRight": (62, RIGHT, 5),
    "mouthSmileLeft": (54, UP, 4), "mouthSmileRight": (48, UP, 4),
    "mouthFrownLeft": (54, DOWN, 3), "mouthFrownRight": (48, DOWN, 3),
    "mouthDimpleLeft": (54, BACK, 2), "mouthDimpleRight": (48, BACK, 2),
    "mouthStretchLeft": (54, LEFT, 3), "mouthStretchRight": (48, RIGHT, 3),
    "mouthFunnel": (51, FORWARD, 3), "mouthPucker": (51, FORWARD, 4),
    "mouthRollLower": (57, BACK, 2), "mouthRollUpper": (51, BACK, 2),
    "mouthShrugLower": (57, UP, 2), "mouthShrugUpper": (51, UP, 1.5),
    "mouthLowerDownLeft": (56, DOWN, 2), "mouthLowerDownRight": (58, DOWN, 2),
    "mouthUpperUpLeft": (52, UP, 2), "mouthUpperUpRight": (50, UP, 2),
    "mouthPressLeft": (65, UP, 0.8), "mouthPressRight": (67, UP, 0.8),
    "browDownLeft": (24, DOWN, 2), "browDownRight": (19, DOWN, 2),
    "browInnerUp": (21, UP, 2), "browOuterUpLeft": (26, UP, 2), "browOuterUpRight": (17, UP, 2),
    "eyeWideLeft": (44, UP, 1), "eyeWideRight": (37, UP, 1),
    "eyeSquintLeft": (46, UP, 0.8), "eyeSquintRight": (41, UP, 0.8),
    "cheekSquintLeft": ("mp:330", UP, 1), "cheekSquintRight": ("mp:101", UP, 1),
    "noseSneerLeft": (35, UP, 1.5), "noseSneerRight": (31, UP, 1.5),
    "eyeLookUpLeft": ("mp:473", UP, 2), "eyeLookUpRight": ("mp:468", UP, 2),
    "eyeLookDownLeft": ("mp:473", DOWN, 2), "eyeLookDownRight": ("mp:468", DOWN, 2),
    "eyeLookInLeft": ("mp:473", RIGHT, 2), "eyeLookInRight": ("mp:468", LEFT, 2),
    "eyeLookOutLeft": ("mp:473", LEFT, 2), "eyeLookOutRight": ("mp:468", RIGHT, 2),
}


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_shape_moves_the_named_feature(model, name):
    index, direction, mm = EXPECT[name]
    scheme = "ibug68"
    if isinstance(index, str):
        scheme, index = "mediapipe478", int(index[3:])
    moved = (lm(model, {name: 1.0}, scheme) - lm(model, None, scheme))[index]
    along = float(moved @ torch.tensor(direction, dtype=moved.dtype)) * 1000
    assert along >= mm, f"{name}: moved {along:.2f} mm along {direction}, expected >= {mm}"


def lid_gap(points, upper, lower):
    return float((points[upper] - points[lower]).norm(dim=-1).mean())


@pytest.mark.parametrize("side, upper, lower", [("Left", [43, 44], [47, 46]), ("Right", [37, 38], [41, 40])])
def test_blink_closes_that_eye_only(model, side, upper, lower):
    open_ = lm(model)
    closed = lm(model, {f"eyeBlink{side}": 1.0})
    assert lid_gap(open_, upper, lower) > 0.006
    assert lid_gap(closed, upper, lower) < 0.2 * lid_gap(open_, upper, lower)  # lids meet
    other = ([37, 38], [41, 40]) if side == "Left" else ([43, 44], [47, 46])
    assert abs(lid_gap(closed, *other) - lid_gap(open_, *other)) < 1e-4


def test_cheek_puff_widens_and_mouth_close_closes(model):
    p0 = lm(model)
    band = (model.template[:468, 1] < p0[33, 1]) & (model.template[:468, 1] > p0[57, 1])  # nose base..chin

    e = torch.zeros(52)
    e[model.expression_index("cheekPuff")] = 1
    d = model.vertices(expression=e)[:468] - model.template[:468]
    x = model.template[:468, 0]
    for side in (1, -1):  # each cheek bulges outward by 3 mm or more
        outward = (d[:, 0] * side)[band & (x * side > 0.02)]
        assert float(outward.max()) > 0.003
    gap = lambda p: float((p[62] - p[66]).norm())  # noqa: E731 (inner lips, middle)
    opened = lm(model, {"jawOpen": 1.0})
    closed = lm(model, {"jawOpen": 1.0, "mouthClose": 1.0})
    assert gap(opened) > 0.02 and gap(closed) < 0.25 * gap(opened)
    pucker = lm(model, {"mouthPucker": 1.0})
    assert float((pucker[48] - pucker[54]).norm()) < 0.85 * float((lm(model)[48] - lm(model)[54]).norm())


def test_tongue_out_reaches_past_the_lips(model):
    e = torch.zeros(52)
    e[model.expression_index("jawOpen")] = 0.6
    base = model.vertices(expression=e)
    e[model.expression_index("tongueOut")] = 1.0
    out = model.vertices(expression=e)
    tongue = model.regions["mouth_interior"] & (model.expression_basis[..., 51].norm(dim=-1) > 0)
    lips_front = float(base[model.regions["lips"], 2].max())
    assert float(out[tongue, 2].max()) > lips_front


def test_left_and_right_shapes_mirror(model):
    """X_Left is the mirror image of X_Right (the rig is symmetric)."""
    pairs = torch.from_numpy(mirror_pairs(model.template.numpy()))
    mirror = torch.tensor([-1.0, 1.0, 1.0])
    for name in ARKIT_NAMES:
        if not name.endswith("Left"):
            continue
        left = model.expression_basis[..., model.expression_index(name)]
        right = model.expression_basis[..., model.expression_index(name[:-4] + "Right")]
        err = (left - right[pairs] * mirror).norm(dim=-1).max()
        assert float(err) < 5e-4, f"{name}: {float(err) * 1000:.2f} mm from the mirrored Right shape"


def test_neutral_mouth_is_closed_and_no_shape_tears(model):
    p = lm(model)
    assert float((p[62] - p[66]).norm()) < 1e-3  # closed lips at rest
    faces = model.faces
    v0 = model.template

    def normals(v):
        return torch.linalg.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])

    n0 = normals(v0)
    skin = model.regions["face"][faces].all(-1)
    median = float(n0[skin].norm(dim=-1).median())
    for i, name in enumerate(ARKIT_NAMES):
        n = normals(v0 + model.expression_basis[..., i])
        grown = float(n[skin].norm(dim=-1).max()) / median
        # The skin of the upper lid and the lip corners stretches most; 8x bounds it.
        assert grown < 8, f"{name} stretches a skin triangle to {grown:.1f}x the median triangle"
        # Folding is judged on triangles a viewer can see: slivers under a tenth of the
        # median area (two at the lip corners, 0.4 mm^2) may flip without showing.
        visible = skin & (n0.norm(dim=-1) > 0.1 * median)
        cos = torch.nn.functional.cosine_similarity(n[visible], n0[visible], dim=-1)
        assert float(cos.min()) > -0.2, f"{name} folds a skin triangle over (cos {float(cos.min()):.2f})"


def test_identity_modes_are_plausible(model):
    """One standard deviation of each identity mode moves the face by 0.5-6 mm."""
    basis = model.identity_basis
    for s in range(basis.shape[2]):
        peak = float(basis[:468, :, s].norm(dim=-1).max()) * 1000
        assert 0.5 < peak < 8.0, f"identity mode {s}: {peak:.1f} mm"
    gram = torch.einsum("vcs,vct->st", basis, basis)
    assert torch.linalg.matrix_rank(gram, rtol=1e-4) == basis.shape[2]  # independent modes


def test_rigid_mask(model):
    rigid = model.rigid_mask
    assert 40 < int(rigid.sum()) < model.num_vertices
    assert float(model.expression_basis[rigid].norm(dim=1).max()) < 1e-4


def test_regenerates_exactly(shared, tmp_path):
    """tools/build_builtin_model.py reproduces the shipped file from the shared photos."""
    pytest.importorskip("mediapipe", reason="regenerating the built-in model needs mediapipe")
    import subprocess
    import sys

    from avatar.paths import asset_path

    out = tmp_path / "builtin_face.npz"
    subprocess.run([sys.executable, "tools/build_builtin_model.py", "--shared", str(shared), "-o", str(out)],
                   check=True, capture_output=True, cwd=str(asset_path("builtin_face.npz").parent.parent))
    with np.load(out) as new, np.load(asset_path("builtin_face.npz")) as shipped:
        assert sorted(new.files) == sorted(shipped.files)
        for key in shipped.files:
            if shipped[key].dtype.kind == "f":
                np.testing.assert_allclose(new[key], shipped[key], atol=1e-6, err_msg=key)
            else:
                np.testing.assert_array_equal(new[key], shipped[key], err_msg=key)
