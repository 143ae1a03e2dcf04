"""FLAME loading (safe unpickling of chumpy/scipy pickles) and linear blend skinning.

No FLAME file is redistributable, so the tests write synthetic ones in FLAME's exact
layout: a Python 2, protocol-2 pickle of a dict whose ``shapedirs`` is a
``chumpy.ch.Ch`` and whose ``J_regressor`` is a ``scipy.sparse.csc.csc_matrix``, with
Python 2 ``str`` opcodes for keys and array payloads. Skinning is compared with an
independent numpy implementation of FLAME's LBS (4x4 homogeneous transforms as in
smplx ``lbs.py``, rotations from scipy).
"""

from __future__ import annotations

import codecs
import copyreg
import io
import os
import pickle
import pickletools
from pathlib import Path
import struct

import numpy as np
import pytest
import scipy.sparse
import torch
from tests.conftest import TOLERANCES
from scipy.spatial import ConvexHull
from scipy.spatial.transform import Rotation

from avatar.facemodel.flame import FLAME_JOINT_NAMES, FLAME_LICENCE, load_flame
from avatar.facemodel.model import Skinning
from avatar.facemodel.safe_pickle import UnsafeModelFileError, load_npy, load_pickle
from avatar.facemodel.skinning import axis_angle_to_matrix, skin_vertices

BATCH_DIMS = [(), (2,), (1, 2)]


# ----------------------------------------------------- Python 2 / chumpy pickles
class FakeCh:
    """Pickles as ``chumpy.ch.Ch`` does: NEWOBJ of the class, then its __dict__ minus caches."""

    def __init__(self, x: np.ndarray) -> None:
        self.state = {
            "x": x,
            "_dirty_vars": {"x"},
            "_itr": None,
            "_depends_on_deps": {},
            "_make_dense": False,
            "_make_sparse": False,
        }

    def __reduce_ex__(self, protocol: int):
        return copyreg.__newobj__, (type(self),), self.state


class FakeSelect(FakeCh):
    """Pickles as ``chumpy.reordering.Select`` (MANO/SMPL-family files)."""

    def __init__(self, a: FakeCh, idxs: np.ndarray, preferred_shape: tuple[int, ...]) -> None:
        self.state = {"a": a, "idxs": idxs, "preferred_shape": preferred_shape, "_dirty_vars": set()}


class FakeCsc:
    """Pickles as a scipy < 1.8 ``csc_matrix`` written by Python 2."""

    def __init__(self, m: scipy.sparse.csc_matrix) -> None:
        self.state = {
            "_shape": m.shape, "maxprint": 50, "format": "csc",
            "indices": m.indices, "indptr": m.indptr, "data": m.data,
        }

    def __reduce_ex__(self, protocol: int):
        return copyreg.__newobj__, (type(self),), self.state


class Py2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote: ``str`` opcodes for text and bytes, and
    numpy/chumpy/scipy globals under their Python 2 module names."""

    NAMES = {
        FakeCh: ("chumpy.ch", "Ch"),
        FakeSelect: ("chumpy.reordering", "Select"),
        FakeCsc: ("scipy.sparse.csc", "csc_matrix"),
        set: ("__builtin__", "set"),
        np.ndarray: ("numpy", "ndarray"),
        np.dtype: ("numpy", "dtype"),
    }
    dispatch = dict(pickle._Pickler.dispatch)

    def save_global(self, obj, name=None):
        if getattr(obj, "__name__", None) in ("_reconstruct", "scalar") and "numpy" in str(obj.__module__):
            module, name = "numpy.core.multiarray", obj.__name__
        elif isinstance(obj, type) and issubclass(obj, np.dtype):
            module, name = "numpy", "dtype"
        elif obj in self.NAMES:
            module, name = self.NAMES[obj]
        else:  # anything else (the attacks below) under its own name
            return super().save_global(obj, name)
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode())
        self.memoize(obj)

    def _save_py2_str(self, raw: bytes, obj) -> None:
        if self.proto == 0:  # S'...' with Python 2 repr escapes
            self.write(pickle.STRING + b"'" + codecs.escape_encode(raw)[0] + b"'\n")
        elif len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    def save_bytes(self, obj: bytes) -> None:
        self._save_py2_str(obj, obj)

    def save_str(self, obj: str) -> None:
        self._save_py2_str(obj.encode("latin-1"), obj)

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str
    dispatch[type] = save_global


def py2_pickle(obj, protocol: int = 2) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=protocol).dump(obj)
    return buf.getvalue()


# ------------------------------------------------------------- synthetic FLAME
def make_flame(seed: int = 0, n_points: int = 240) -> dict[str, np.ndarray]:
    """A small head-sized model with FLAME's keys, shapes and dtypes (J = 5, 300 + 100 shapedirs)."""
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(n_points, 3))
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    hull = ConvexHull(pts)
    faces = hull.simplices.astype(np.uint32)
    # orient every triangle outward (counter-clockwise seen from outside)
    a, b, c = (pts[faces[:, i]] for i in range(3))
    flip = np.einsum("fi,fi->f", np.cross(b - a, c - a), a) < 0
    faces[flip] = faces[flip][:, ::-1]
    V = n_points
    template = pts * np.array([0.08, 0.11, 0.1])
    J = 5
    weights = rng.dirichlet(np.full(J, 0.3), size=V)
    regressor = np.zeros((J, V))
    for j in range(J):
        idx = rng.choice(V, size=6, replace=False)
        regressor[j, idx] = rng.dirichlet(np.ones(6))
    return {
        "f": faces,
        "J_regressor": scipy.sparse.csc_matrix(regressor),
        "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64),
        "J": regressor @ template,
        "weights": weights,
        "posedirs": rng.normal(scale=2e-3, size=(V, 3, 9 * (J - 1))),
        "v_template": template,
        "shapedirs": rng.normal(scale=1e-3, size=(V, 3, 400)),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


def flame_bytes(arrays: dict[str, object], drop: tuple[str, ...] = ()) -> bytes:
    """Pickle ``arrays`` as FLAME's generic_model.pkl is: shapedirs a Ch, J_regressor a csc."""
    payload = {}
    for key, value in arrays.items():
        if key in drop:
            continue
        if key == "shapedirs":
            value = FakeCh(value)
        elif key == "J_regressor":
            value = FakeCsc(value)
        payload[key] = value
    return py2_pickle(payload)


@pytest.fixture(scope="module")
def flame_arrays() -> dict[str, np.ndarray]:
    return make_flame()


@pytest.fixture(scope="module")
def flame_file(tmp_path_factory, flame_arrays) -> Path:
    path = tmp_path_factory.mktemp("flame") / "generic_model.pkl"
    path.write_bytes(flame_bytes(flame_arrays))
    return path


# ---------------------------------------------------- independent numpy FLAME LBS
def reference_flame(arrays, betas, psi, pose) -> np.ndarray:
    """FLAME forward pass in numpy float64 for one (betas [300], psi [100], pose [5, 3])."""
    v = arrays["v_template"] + arrays["shapedirs"] @ np.concatenate([betas, psi])
    joints = arrays["J_regressor"].toarray() @ v
    R = Rotation.from_rotvec(pose).as_matrix()  # [5, 3, 3]
    feature = (R[1:] - np.eye(3)).reshape(-1)
    v = v + arrays["posedirs"] @ feature
    parents = [-1, 0, 1, 1, 1]
    G = []
    for j, p in enumerate(parents):
        local = np.eye(4)
        local[:3, :3] = R[j]
        local[:3, 3] = joints[j] - (joints[p] if p >= 0 else 0.0)
        G.append(local if p < 0 else G[p] @ local)
    A = []
    for j in range(5):
        rest = np.eye(4)
        rest[:3, 3] = -joints[j]
        A.append(G[j] @ rest)
    T = np.einsum("vj,jab->vab", arrays["weights"], np.stack(A))
    vh = np.concatenate([v, np.ones((len(v), 1))], 1)
    return np.einsum("vab,vb->va", T, vh)[:, :3]


def random_pose(rng, shape) -> np.ndarray:
    """Axis-angle poses with angles up to 6 rad (past pi), and one joint exactly at rest."""
    axis = rng.normal(size=(*shape, 5, 3))
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    angle = rng.uniform(0.0, 6.0, size=(*shape, 5, 1))
    pose = axis * angle
    pose[..., 3, :] = 0.0  # one joint exactly at rest
    return pose


# ============================================================== safe_pickle
def test_synthetic_pickle_has_flame_layout(flame_file):
    data = flame_file.read_bytes()
    assert data[:2] == b"\x80\x02"  # protocol 2, as cPickle.dump(..., -1) wrote
    globals_ = {arg for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"}
    assert globals_ == {
        "chumpy.ch Ch", "scipy.sparse.csc csc_matrix", "__builtin__ set",
        "numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype",
    }
    ops = {op.name for op, _, _ in pickletools.genops(data)}
    assert "SHORT_BINSTRING" in ops and "BINSTRING" in ops and "BINUNICODE" not in ops


def test_load_pickle_resolves_chumpy_and_sparse(flame_file, flame_arrays):
    for source in (flame_file, flame_file.read_bytes()):
        data = load_pickle(source)
        assert isinstance(data["shapedirs"], np.ndarray)
        np.testing.assert_array_equal(data["shapedirs"], flame_arrays["shapedirs"])
        assert isinstance(data["J_regressor"], scipy.sparse.csc_matrix)
        np.testing.assert_array_equal(data["J_regressor"].toarray(), flame_arrays["J_regressor"].toarray())
        np.testing.assert_array_equal(data["f"], flame_arrays["f"])
        assert data["bs_style"] == "lbs"


def test_load_pickle_chumpy_select():
    a = np.arange(24.0).reshape(2, 3, 4)
    idxs = np.array([5, 1, 7, 0])
    data = load_pickle(py2_pickle({"s": FakeSelect(FakeCh(a), idxs, (2, 2))}))
    np.testing.assert_array_equal(data["s"], a.ravel()[idxs].reshape(2, 2))


def test_load_pickle_python3_protocols():
    """Files re-saved by Python 3 (scipy >= 1.8 names, _codecs bytes at protocol 2, protocol 5)."""
    value = {"a": np.arange(6.0).reshape(2, 3), "m": scipy.sparse.csr_matrix(np.eye(3)), "s": {1, 2}}
    for protocol in (2, 3, 4, 5):
        data = load_pickle(pickle.dumps(value, protocol=protocol))
        np.testing.assert_array_equal(data["a"], value["a"])
        assert isinstance(data["m"], scipy.sparse.csr_matrix)
        np.testing.assert_array_equal(data["m"].toarray(), np.eye(3))
        assert data["s"] == {1, 2}


class _Exploit:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


def _malicious_payloads(target: Path) -> dict[str, bytes]:
    command = f"touch {target}"
    code = f"open({str(target)!r}, 'w').close()"
    payloads = {
        "os.system": pickle.dumps(_Exploit(os.system, command), protocol=2),
        "builtins.eval": pickle.dumps(_Exploit(eval, code), protocol=2),
        "builtins.exec@4": pickle.dumps(_Exploit(exec, code), protocol=4),
        # hand-written GLOBAL opcodes, as an attacker would write them
        "os.system@0": f"cos\nsystem\n(V{command}\ntR.".encode(),
        "subprocess": f"csubprocess\ncall\n((V/bin/sh\nV-c\nV{command}\nltR.".encode(),
        # a chumpy name that is not on the list, and a numpy function that is not either
        "chumpy": b"cchumpy.ch_ops\nadd\n)R.",
        "numpy.load": b"cnumpy\nload\n(V/etc/passwd\ntR.",
    }
    # the attack hidden inside an otherwise valid FLAME dict
    payloads["in FLAME dict"] = flame_bytes({**make_flame(n_points=30), "J": _Exploit(os.system, command)})
    return payloads


def test_malicious_pickles_are_refused(tmp_path):
    target = tmp_path / "pwned"
    for label, payload in _malicious_payloads(target).items():
        with pytest.raises(UnsafeModelFileError, match="not a FLAME model or it has been tampered with"):
            load_pickle(payload)
        assert not target.exists(), label
    with pytest.raises(UnsafeModelFileError, match="posix.system|os.system"):
        load_pickle(_malicious_payloads(target)["os.system"])
    with pytest.raises(UnsafeModelFileError, match="builtin.*eval"):
        load_pickle(_malicious_payloads(target)["builtins.eval"])
    assert issubclass(UnsafeModelFileError, ValueError)


def test_malicious_flame_file_is_refused_by_loader(tmp_path):
    target = tmp_path / "pwned"
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(_malicious_payloads(target)["in FLAME dict"])
    with pytest.raises(UnsafeModelFileError, match="system"):
        load_flame(path)
    assert not target.exists()


def test_truncated_and_corrupt_files(tmp_path, flame_file):
    data = flame_file.read_bytes()
    for label, broken in {"half": data[: len(data) // 2], "one byte": data[:1], "empty": b"",
                          "garbage": b"\x80\x02\xff\xfe not a pickle"}.items():
        path = tmp_path / f"{label}.pkl"
        path.write_bytes(broken)
        with pytest.raises(ValueError, match="is not a readable FLAME pickle") as info:
            load_flame(path)
        assert not isinstance(info.value, UnsafeModelFileError), label
        assert str(path) in str(info.value)


def test_load_npy_object_payload_is_restricted(tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, np.array({"lmk_face_idx": np.arange(3)}, dtype=object), allow_pickle=True)
    table = load_npy(good)[()]
    np.testing.assert_array_equal(table["lmk_face_idx"], np.arange(3))
    plain = tmp_path / "plain.npy"
    np.save(plain, np.arange(4.0))
    np.testing.assert_array_equal(load_npy(plain), np.arange(4.0))
    bad = tmp_path / "bad.npy"
    target = tmp_path / "pwned"
    np.save(bad, np.array([_Exploit(os.system, f"touch {target}")], dtype=object), allow_pickle=True)
    with pytest.raises(UnsafeModelFileError):
        load_npy(bad)
    assert not target.exists()


# ================================================================= load_flame
def test_load_flame_smoke_and_shapes(flame_file, flame_arrays):
    model = load_flame(flame_file)
    V = flame_arrays["v_template"].shape[0]
    assert model.name == "flame" and model.num_vertices == V
    assert model.num_identity == 300 and model.num_expression == 100
    assert model.expression_names[0] == "flame_exp_000" and model.expression_names[-1] == "flame_exp_099"
    assert not model.arkit
    assert model.template.dtype == torch.float32 and model.faces.dtype == torch.long
    assert model.skinning.joint_names == FLAME_JOINT_NAMES
    assert model.skinning.parents.tolist() == [-1, 0, 1, 1, 1]
    assert model.skinning.pose_basis.shape == (V, 3, 36)
    assert model.rigid_mask.shape == (V,) and model.rigid_mask.dtype == torch.bool
    assert set(model.regions) == {"face", "lips", "eyes", "scalp", "neck"}
    # No embedding file beside it: both schemes are registered from the built-in model.
    assert set(model.landmarks) == {"ibug68", "mediapipe478"}
    assert len(model.landmarks["ibug68"]) == 68 and len(model.landmarks["mediapipe478"]) == 478
    assert model.licence == FLAME_LICENCE and "not redistributable" in FLAME_LICENCE
    assert model.vertices().shape == (V, 3)


@pytest.mark.parametrize("batch_dims", BATCH_DIMS)
def test_vertices_match_numpy_flame(flame_file, flame_arrays, batch_dims):
    model = load_flame(flame_file, dtype=torch.float64)
    rng = np.random.default_rng(len(batch_dims))
    betas = rng.normal(size=(*batch_dims, 300))
    psi = rng.normal(size=(*batch_dims, 100))
    pose = random_pose(rng, batch_dims)
    got = model.vertices(torch.from_numpy(betas), torch.from_numpy(psi), torch.from_numpy(pose))
    assert got.shape == (*batch_dims, model.num_vertices, 3) and got.dtype == torch.float64
    for index in np.ndindex(*batch_dims):
        want = reference_flame(flame_arrays, betas[index], psi[index], pose[index])
        torch.testing.assert_close(got[index], torch.from_numpy(want), **TOLERANCES[torch.float64])


def test_vertices_broadcast_and_float32(flame_file, flame_arrays):
    """Identity without batch dims against a batch of poses; float32 within its tolerance."""
    rng = np.random.default_rng(7)
    betas = rng.normal(size=300)
    pose = random_pose(rng, (3,))
    model32 = load_flame(flame_file)
    got = model32.vertices(torch.from_numpy(betas).float(), None, torch.from_numpy(pose).float())
    assert got.shape == (3, model32.num_vertices, 3)
    for i in range(3):
        want = reference_flame(flame_arrays, betas, np.zeros(100), pose[i])
        torch.testing.assert_close(got[i], torch.from_numpy(want).float(), **TOLERANCES[torch.float32])


def test_rigid_mask_and_eye_regions(tmp_path, flame_arrays):
    """rigid: neck-joint weight >= 0.95 and (almost) no expression motion; eyes: eye-joint dominated."""
    arrays = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in flame_arrays.items()}
    weights, shapedirs = arrays["weights"], arrays["shapedirs"]
    weights[:20] = np.eye(5)[1]  # carried by the neck joint only
    shapedirs[:10, :, 300:] = 0.0  # ... and still under every expression: rigid
    shapedirs[10:20, :, 300:] *= 10.0  # ... but moved by expressions: not rigid
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(flame_bytes(arrays))
    model = load_flame(path)
    motion = np.linalg.norm(shapedirs[:, :, 300:], axis=1).max(1)
    still = motion <= max(0.5e-3, 0.05 * motion.max())
    expected = (weights[:, 1] >= 0.95) & still
    assert expected[:10].all() and not expected[10:20].any()
    np.testing.assert_array_equal(model.rigid_mask.numpy(), expected)
    np.testing.assert_array_equal(model.regions["eyes"].numpy(), np.isin(weights.argmax(1), [3, 4]))
    for name, mask in model.regions.items():
        assert mask.shape == (model.num_vertices,) and mask.dtype == torch.bool, name
    assert not (model.regions["face"] & model.regions["neck"]).any()


def test_missing_keys_are_named(tmp_path, flame_arrays):
    for key in ("v_template", "posedirs", "J_regressor", "shapedirs"):
        path = tmp_path / f"no_{key}.pkl"
        path.write_bytes(flame_bytes(flame_arrays, drop=(key,)))
        with pytest.raises(ValueError, match=f"no '{key}' entry.*FLAME model file .* is a pickled dict with"):
            load_flame(path)


def test_bad_inputs_raise(tmp_path, flame_arrays):
    not_dict = tmp_path / "list.pkl"
    not_dict.write_bytes(py2_pickle([1, 2, 3]))
    with pytest.raises(ValueError, match="holds a list, not a FLAME model"):
        load_flame(not_dict)
    wrong = tmp_path / "wrong.pkl"
    wrong.write_bytes(flame_bytes({**flame_arrays, "posedirs": flame_arrays["posedirs"][:10]}))
    with pytest.raises(ValueError, match="'posedirs' must be"):
        load_flame(wrong)
    with pytest.raises(FileNotFoundError):
        load_flame(tmp_path / "absent.pkl")
    with pytest.raises(ValueError, match="folder"):
        load_flame(tmp_path)


def test_landmarks_and_masks_beside_the_model(tmp_path, flame_arrays):
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(flame_bytes(flame_arrays))
    F, V = len(flame_arrays["f"]), len(flame_arrays["v_template"])
    rng = np.random.default_rng(3)
    static_fi = rng.integers(0, F, size=51).astype(np.uint32)
    static_b = rng.dirichlet(np.ones(3), size=51)
    # FLAME's static embedding is a Python 2 text pickle (protocol 0) of two arrays
    static = py2_pickle({"lmk_face_idx": static_fi, "lmk_b_coords": static_b}, protocol=0)
    assert static.startswith(b"(dp0\nS'lmk_face_idx'\n") and b"cnumpy.core.multiarray\n_reconstruct\n" in static
    (tmp_path / "flame_static_embedding.pkl").write_bytes(static)
    model = load_flame(path)
    # The 51 static points are kept; the jaw line and MediaPipe-478 are registered.
    assert set(model.landmarks) == {"ibug51", "ibug68", "mediapipe478"}
    np.testing.assert_array_equal(model.landmarks["ibug68"].face_index[17:].numpy(), static_fi)
    np.testing.assert_array_equal(model.landmarks["ibug51"].face_index.numpy(), static_fi)

    dyn_fi = rng.integers(0, F, size=(79, 17))
    dyn_b = rng.dirichlet(np.ones(3), size=(79, 17))
    np.save(tmp_path / "flame_dynamic_embedding.npy",
            np.array({"lmk_face_idx": dyn_fi, "lmk_b_coords": dyn_b}, dtype=object), allow_pickle=True)
    eyes = np.arange(0, V, 7)
    (tmp_path / "FLAME_masks.pkl").write_bytes(py2_pickle(
        {"face": np.arange(10), "lips": np.arange(3), "left_eyeball": eyes[:5], "right_eyeball": eyes[5:10],
         "scalp": np.arange(20, 40), "neck": np.arange(50, 60), "nose": np.arange(4)}))
    model = load_flame(path)
    lm = model.landmarks["ibug68"]
    assert len(lm) == 68 and lm.name == "ibug68"
    np.testing.assert_array_equal(lm.face_index.numpy()[:17], dyn_fi[0])
    np.testing.assert_array_equal(lm.face_index.numpy()[17:], static_fi)
    assert model.landmarks_3d(model.template).shape == (68, 3)
    assert model.regions["eyes"].nonzero()[:, 0].tolist() == eyes[:10].tolist()
    assert model.regions["neck"].sum() == 10


def test_deca_landmark_embedding(tmp_path, flame_arrays):
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(flame_bytes(flame_arrays))
    F = len(flame_arrays["f"])
    rng = np.random.default_rng(5)
    full_fi = rng.integers(0, F, size=(1, 68))
    full_b = rng.dirichlet(np.ones(3), size=(1, 68))
    np.save(tmp_path / "landmark_embedding.npy", np.array(
        {"full_lmk_faces_idx": full_fi, "full_lmk_bary_coords": full_b,
         "static_lmk_faces_idx": full_fi[0, 17:], "static_lmk_bary_coords": full_b[0, 17:],
         "dynamic_lmk_faces_idx": torch.zeros(79, 17, dtype=torch.long)}, dtype=object), allow_pickle=True)
    model = load_flame(path)
    np.testing.assert_array_equal(model.landmarks["ibug68"].face_index.numpy(), full_fi[0])
    np.testing.assert_array_equal(model.landmarks["ibug51"].face_index.numpy(), full_fi[0, 17:])


# ================================================================= skinning
def tiny_skinning(rng, V: int = 7, J: int = 4) -> Skinning:
    regressor = rng.dirichlet(np.ones(V), size=J)
    return Skinning(
        joint_regressor=torch.from_numpy(regressor),
        parents=torch.tensor([-1, 0, 1, 1][:J]),
        weights=torch.from_numpy(rng.dirichlet(np.ones(J), size=V)),
        pose_basis=torch.from_numpy(rng.normal(scale=0.1, size=(V, 3, 9 * (J - 1)))),
        joint_names=tuple(f"j{i}" for i in range(J)),
    )


def test_axis_angle_to_matrix_matches_scipy():
    rng = np.random.default_rng(0)
    for batch_dims in BATCH_DIMS:
        aa = rng.normal(size=(*batch_dims, 3)) * 2.0
        got = axis_angle_to_matrix(torch.from_numpy(aa))
        want = Rotation.from_rotvec(aa.reshape(-1, 3)).as_matrix().reshape(*batch_dims, 3, 3)
        torch.testing.assert_close(got, torch.from_numpy(want), **TOLERANCES[torch.float64])
    tiny = torch.tensor([[0.0, 0.0, 0.0], [1e-12, -2e-12, 0.0], [1e-5, 0.0, 3e-6], [0.0, np.pi, 0.0]],
                        dtype=torch.float64)
    want = Rotation.from_rotvec(tiny.numpy()).as_matrix()
    torch.testing.assert_close(axis_angle_to_matrix(tiny), torch.from_numpy(want), **TOLERANCES[torch.float64])
    with pytest.raises(ValueError, match=r"\[\.\.\., 3\]"):
        axis_angle_to_matrix(torch.zeros(2, 4))


def test_axis_angle_gradient_at_zero():
    for dtype in (torch.float32, torch.float64):
        aa = torch.zeros(3, dtype=dtype, requires_grad=True)
        jac = torch.autograd.functional.jacobian(axis_angle_to_matrix, aa)  # [3, 3, 3]
        assert torch.isfinite(jac).all()
        # dR/da_k at 0 is the cross-product matrix of e_k
        generators = torch.tensor(
            [[[0, 0, 0], [0, 0, -1], [0, 1, 0]], [[0, 0, 1], [0, 0, 0], [-1, 0, 0]],
             [[0, -1, 0], [1, 0, 0], [0, 0, 0]]], dtype=dtype)
        torch.testing.assert_close(jac.permute(2, 0, 1), generators, **TOLERANCES[dtype])
    small = torch.tensor([[0.0, 0.0, 0.0], [1e-9, 0.0, -1e-9], [0.3, -2.0, 1.0], [0.0, 0.0, 3.1]],
                         dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (small,))


def test_skin_vertices_gradcheck():
    rng = np.random.default_rng(1)
    skinning = tiny_skinning(rng)
    vertices = torch.from_numpy(rng.normal(size=(2, 7, 3))).requires_grad_()
    rotations = torch.from_numpy(rng.normal(size=(2, 4, 3))).requires_grad_()
    with torch.no_grad():
        rotations[0, 2] = 0.0  # a joint exactly at rest
    assert torch.autograd.gradcheck(lambda v, r: skin_vertices(v, r, skinning), (vertices, rotations))


def test_skin_vertices_rest_pose_and_rigid_motion():
    rng = np.random.default_rng(2)
    skinning = tiny_skinning(rng)
    vertices = torch.from_numpy(rng.normal(size=(7, 3)))
    rest = skin_vertices(vertices, torch.zeros(4, 3, dtype=torch.float64), skinning)
    torch.testing.assert_close(rest, vertices, **TOLERANCES[torch.float64])
    # a root rotation alone rotates everything rigidly about the root joint
    root = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    pose = torch.zeros(4, 3, dtype=torch.float64)
    pose[0] = root
    R = axis_angle_to_matrix(root)
    j0 = skinning.joint_regressor[0] @ vertices
    torch.testing.assert_close(skin_vertices(vertices, pose, skinning), (vertices - j0) @ R.T + j0,
                               **TOLERANCES[torch.float64])


def test_skin_vertices_bad_inputs():
    rng = np.random.default_rng(3)
    skinning = tiny_skinning(rng)
    with pytest.raises(ValueError, match=r"joint_rotations \[\.\.\., 4, 3\]"):
        skin_vertices(torch.zeros(7, 3, dtype=torch.float64), torch.zeros(5, 3, dtype=torch.float64), skinning)
    with pytest.raises(ValueError, match="V=6"):
        skin_vertices(torch.zeros(6, 3, dtype=torch.float64), torch.zeros(4, 3, dtype=torch.float64), skinning)
    with pytest.raises(ValueError, match="broadcast"):
        skin_vertices(torch.zeros(2, 7, 3, dtype=torch.float64), torch.zeros(3, 4, 3, dtype=torch.float64), skinning)


def test_landmarks_registered_on_a_face_shaped_flame(tmp_path):
    """A FLAME file whose surface is the built-in model's face and eyes: the iBUG-68 and
    MediaPipe-478 points registered through the eye joints land where the built-in
    model has them (within 3 mm; the eye joints fix scale and position only)."""
    from avatar.facemodel import load

    builtin = load("builtin")
    keep = builtin.regions["face"] | builtin.regions["eyes"]
    index = torch.full((builtin.num_vertices,), -1, dtype=torch.long)
    index[keep] = torch.arange(int(keep.sum()))
    faces = index[builtin.faces[keep[builtin.faces].all(-1)]].numpy().astype(np.uint32)
    template = builtin.template[keep].double().numpy()
    V = len(template)
    arrays = make_flame()
    x = template[:, 0]
    eyes = builtin.regions["eyes"][keep].numpy()
    regressor = np.zeros((5, V))
    regressor[0, :] = 1.0 / V
    regressor[1, :] = 1.0 / V
    regressor[2, :] = 1.0 / V
    regressor[3, eyes & (x > 0)] = 1.0 / (eyes & (x > 0)).sum()  # eye_left: the subject's left
    regressor[4, eyes & (x < 0)] = 1.0 / (eyes & (x < 0)).sum()
    rng = np.random.default_rng(0)
    arrays.update({
        "f": faces, "v_template": template, "J_regressor": scipy.sparse.csc_matrix(regressor),
        "J": regressor @ template, "weights": rng.dirichlet(np.full(5, 0.3), size=V),
        "posedirs": np.zeros((V, 3, 36)), "shapedirs": np.zeros((V, 3, 400)),
    })
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(flame_bytes(arrays))
    model = load_flame(path, dtype=torch.float64)
    for scheme in ("ibug68", "mediapipe478"):
        got = model.landmarks_3d(model.template, scheme)
        want = builtin.landmarks_3d(builtin.template, scheme).double()
        err = (got - want).norm(dim=-1)
        assert float(err.median()) < 0.001 and float(err.max()) < 0.003, (scheme, float(err.max()))
