"""ICT-FaceKit loader: reads the user's FaceXModel folder exactly (vertex topology kept),
exposes ARKit names, caches by content."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from avatar.facemodel import ARKIT_NAMES, load
from avatar.facemodel import ict


def obj_vertices(path: Path) -> np.ndarray:
    """An independent reader of an OBJ's v lines (metres)."""
    rows = [line.split()[1:4] for line in path.read_text().splitlines() if line.startswith("v ")]
    return np.array(rows, dtype=np.float64) * 0.01


@pytest.fixture(scope="module")
def head_size(ict_dir):
    v = obj_vertices(ict_dir / "generic_neutral_mesh.obj")
    return float(np.linalg.norm(v.max(0) - v.min(0)))


@pytest.mark.parametrize(
    "obj, kind, index",
    [
        ("generic_neutral_mesh", None, None),
        ("identity000", "identity", 0),
        ("identity001", "identity", 1),
        ("identity099", "identity", 99),
        ("jawOpen", "expression", "jawOpen"),
        ("eyeBlink_L", "expression", "eyeBlinkLeft"),
    ],
)
def test_reproduces_obj_files(ict_model, ict_dir, head_size, obj, kind, index):
    expected = obj_vertices(ict_dir / f"{obj}.obj")
    if kind == "identity":
        ident = torch.zeros(ict_model.num_identity, dtype=torch.float64)
        ident[index] = 1.0
        got = ict_model.to(torch.float64).vertices(identity=ident)
    elif kind == "expression":
        expr = torch.zeros(ict_model.num_expression, dtype=torch.float64)
        expr[ict_model.expression_index(index)] = 1.0
        got = ict_model.to(torch.float64).vertices(expression=expr)
    else:
        got = ict_model.vertices()
    assert got.shape == expected.shape == (26719, 3)
    err = np.abs(got.double().numpy() - expected).max() / head_size
    assert err < 1e-5, f"{obj}: max error {err:.2e} of head size"


def test_arkit_names_and_extras(ict_model, ict_dir):
    names = ict_model.expression_names
    assert tuple(names[:52]) == ARKIT_NAMES and ict_model.arkit
    assert set(names[52:]) == {"cheekRaiser_L", "cheekRaiser_R", "PupilDilate_L", "PupilDilate_R"}
    basis = ict_model.expression_basis
    assert torch.count_nonzero(basis[..., names.index("tongueOut")]) == 0  # documented: ICT has no tongue
    neutral = obj_vertices(ict_dir / "generic_neutral_mesh.obj")
    halves = sum(obj_vertices(ict_dir / f"browInnerUp_{s}.obj") - neutral for s in "LR")
    got = basis[..., names.index("browInnerUp")].double().numpy()
    assert np.abs(got - halves).max() < 1e-6


def test_left_is_subject_left(ict_model):
    """ARKit's Left is the subject's left, +x in model space."""
    shape = ict_model.expression_basis[..., ict_model.expression_index("eyeBlinkLeft")]
    moved = shape.norm(dim=-1) > 1e-3
    assert ict_model.template[moved, 0].mean() > 0.02


def test_topology_not_split_at_seams(ict_model):
    assert ict_model.num_vertices == 26719  # trimesh would give 28,911
    assert ict_model.faces.max() < 26719
    assert ict_model.uvs is not None and ict_model.uvs.shape[0] == 28911
    assert ict_model.face_uvs.shape == ict_model.faces.shape


def test_masks_and_regions(ict_model):
    V = ict_model.num_vertices
    for name in ("face", "lips", "eyes", "scalp", "neck"):
        mask = ict_model.regions[name]
        assert mask.shape == (V,) and mask.dtype == torch.bool and 0 < int(mask.sum()) < V, name
    assert not (ict_model.regions["lips"] & ~ict_model.regions["face"]).any()
    rigid = ict_model.rigid_mask
    assert int(rigid.sum()) > 300
    # Skull vertices do not move under any expression (ICT's own list includes jaw parts).
    moved = ict_model.expression_basis.norm(dim=1).amax(-1)
    assert float(moved[rigid].max()) < 1e-4


def test_batched_and_differentiable(ict_model):
    for batch in [(), (2,), (1, 2)]:
        ident = torch.randn(*batch, 10, requires_grad=True)
        expr = torch.rand(*batch, 52, requires_grad=True)
        v = ict_model.vertices(identity=ident, expression=expr)
        assert v.shape == (*batch, 26719, 3)
        g = torch.randn_like(v)
        gi, ge = torch.autograd.grad(v, (ident, expr), g)
        # Linear model: the gradient is the basis contracted with the output gradient.
        ref = torch.einsum("...vc,vce->...e", g, ict_model.expression_basis[..., :52])
        torch.testing.assert_close(ge, ref, rtol=1e-4, atol=1e-5)
        assert gi.shape == ident.shape


def test_loads_from_cache(ict_dir, tmp_path, monkeypatch):
    cold = load(ict_dir, cache_dir=tmp_path)
    files = list(tmp_path.glob("ict-*.npz"))
    assert len(files) == 1

    def no_compile(folder):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(ict, "compile_ict", no_compile)
    warm = load(ict_dir, cache_dir=tmp_path)
    assert torch.equal(cold.template, warm.template)
    assert torch.equal(cold.landmarks["mediapipe478"].bary, warm.landmarks["mediapipe478"].bary)


def test_fingerprint_follows_content(tmp_path):
    folder = tmp_path / "FaceXModel"
    folder.mkdir()
    (folder / "generic_neutral_mesh.obj").write_text("v 0 0 0\n")
    (folder / "vertex_indices.json").write_text("{}")
    a = ict._fingerprint(folder)
    (folder / "generic_neutral_mesh.obj").write_text("v 0 0 1\n")
    assert ict._fingerprint(folder) != a


def test_landmarks(ict_model, ict_dir):
    ids = json.loads((ict_dir / "vertex_indices.json").read_text())["idx_to_landmark_verts"]
    pts = ict_model.landmarks_3d(ict_model.template, "ibug68")
    torch.testing.assert_close(pts, ict_model.template[ids])
    mp = ict_model.landmarks["mediapipe478"]
    assert len(mp) == 478
    mp_pts = ict_model.landmarks_3d(ict_model.template, "mediapipe478")
    # Registered, not typed: MediaPipe's nose tip (1) lands near ICT's iBUG nose tip (30),
    # the mouth corners (61, 291) near iBUG 48 and 54 (within 6 mm).
    for mp_i, ib_i in ((1, 30), (61, 48), (291, 54), (33, 36), (263, 45), (152, 8)):
        assert float((mp_pts[mp_i] - pts[ib_i]).norm()) < 0.006, (mp_i, ib_i)
    # Irises on the eyeballs.
    lo, hi = ict.PARTS["eyeball_left"][0], ict.PARTS["eyeball_right"][1]
    iris_tris = ict_model.faces[mp.face_index[468:]]
    assert bool(((iris_tris >= lo) & (iris_tris < hi)).all())


def test_missing_folder_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv(ict.ICT_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="ICT-FaceKit model not found"):
        ict.find_ict_dir(tmp_path / "nowhere")


def test_corrupt_file_is_a_clear_error(ict_dir, tmp_path):
    folder = tmp_path / "FaceXModel"
    folder.mkdir()
    shutil.copy(ict_dir / "vertex_indices.json", folder)
    text = (ict_dir / "generic_neutral_mesh.obj").read_text()
    (folder / "generic_neutral_mesh.obj").write_text(text)
    (folder / "identity000.obj").write_text("v 1 2 nonsense\n")
    with pytest.raises(ict.ICTModelError, match="identity000"):
        ict.compile_ict(folder)
