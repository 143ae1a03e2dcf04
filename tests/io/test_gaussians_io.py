"""Tests of avatar.io.gaussians: 3DGS PLY and KHR_gaussian_splatting glTF round trips,
the exact file layouts read back independently (plyfile, struct/json), files written by
other tools, bad files, atomic writes, and the Khronos glTF validator."""

from __future__ import annotations

import base64
import json
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from avatar.io import Gaussians, Mesh, read_gaussians, write_gaussians, write_glb
from avatar.io import write_ply as write_mesh_ply
from avatar.io.gaussians import SH_C0, read_gltf, read_ply, write_gltf, write_ply
from tests.conftest import TOLERANCES

TOL32 = TOLERANCES[torch.float32]
DEGREES = [0, 1, 2, 3]
EXT = "KHR_gaussian_splatting"


def _gaussians(degree: int, n: int = 7, seed: int = 0) -> Gaussians:
    """Random Gaussians with full float32 mantissas, unnormalized quaternions, scales in 1e-4..1e-1 m."""
    g = torch.Generator().manual_seed(seed + 10 * degree)
    return Gaussians(
        means=torch.randn(n, 3, generator=g) * 0.1,
        quats=torch.randn(n, 4, generator=g) * 3.0,
        scales=10.0 ** (-4.0 + 3.0 * torch.rand(n, 3, generator=g)),
        opacities=0.01 + 0.98 * torch.rand(n, generator=g),
        sh=torch.randn(n, (degree + 1) ** 2, 3, generator=g),
    )


def _standard_names(degree: int) -> list[str]:
    rest = 3 * ((degree + 1) ** 2 - 1)
    return (
        ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
        + [f"f_rest_{i}" for i in range(rest)]
        + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    )


def _logit(p: np.ndarray) -> np.ndarray:
    p = p.astype(np.float64)
    return np.log(p) - np.log1p(-p)


def _parse_glb(path: Path) -> tuple[dict, bytes]:
    """JSON and BIN chunk of a GLB, parsed with struct (independent of the reader)."""
    data = path.read_bytes()
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    json_length, json_type = struct.unpack_from("<I4s", data, 12)
    assert json_type == b"JSON" and json_length % 4 == 0
    document = json.loads(data[20 : 20 + json_length])
    bin_length, bin_type = struct.unpack_from("<I4s", data, 20 + json_length)
    assert bin_type == b"BIN\0" and bin_length % 4 == 0
    return document, data[28 + json_length : 28 + json_length + bin_length]


def _float_accessor(document: dict, binary: bytes, index: int) -> np.ndarray:
    accessor = document["accessors"][index]
    view = document["bufferViews"][accessor["bufferView"]]
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[accessor["type"]]
    assert accessor["componentType"] == 5126 and "byteStride" not in view
    start = view.get("byteOffset", 0) + accessor.get("byteOffset", 0)
    return np.frombuffer(binary, "<f4", accessor["count"] * width, start).reshape(accessor["count"], width)


# --- Gaussians type ----------------------------------------------------------------------------


def test_gaussians_type_shapes_and_properties():
    for degree in DEGREES:
        g = _gaussians(degree)
        assert g.sh_degree == degree and g.num_gaussians == 7
        assert repr(g) == f"Gaussians(N=7, sh_degree={degree}, dtype=torch.float32)"
    g = _gaussians(1)
    fields = dict(means=g.means, quats=g.quats, scales=g.scales, opacities=g.opacities, sh=g.sh)
    bad = {
        "means": (torch.zeros(7, 2), r"means \[N, 3\]"),
        "quats": (torch.zeros(7, 3), r"quats \[N=7, 4\]"),
        "scales": (torch.zeros(6, 3), r"scales \[N=7, 3\]"),
        "opacities": (torch.zeros(7, 1), r"opacities \[N=7\]"),
        "sh": (torch.zeros(7, 5, 3), r"sh \[N=7, K, 3\] with K in \[1, 4, 9, 16\]"),
    }
    for name, (value, message) in bad.items():
        with pytest.raises(ValueError, match=message):
            Gaussians(**{**fields, name: value})
    with pytest.raises(ValueError, match=r"sh \[N=7, K, 3\]"):
        Gaussians(**{**fields, "sh": torch.zeros(7, 4, 4)})
    with pytest.raises(ValueError, match="float tensor"):
        Gaussians(**{**fields, "opacities": torch.ones(7, dtype=torch.long)})
    with pytest.raises(TypeError, match="torch.Tensor"):
        Gaussians(**{**fields, "means": np.zeros((7, 3))})
    empty = Gaussians(torch.zeros(0, 3), torch.zeros(0, 4), torch.zeros(0, 3), torch.zeros(0), torch.zeros(0, 16, 3))
    assert empty.num_gaussians == 0 and empty.sh_degree == 3


# --- PLY -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("degree", DEGREES)
def test_ply_round_trip(tmp_path: Path, degree: int):
    g = _gaussians(degree)
    write_ply(tmp_path / "g.ply", g)
    back = read_ply(tmp_path / "g.ply")
    assert back.sh_degree == degree and back.num_gaussians == g.num_gaussians
    assert torch.equal(back.means, g.means)
    assert torch.equal(back.quats, g.quats)  # as written: wxyz, not normalized
    assert torch.equal(back.sh, g.sh)
    # logit / log in float32 and back: float32 rounding of the stored logit and log.
    torch.testing.assert_close(back.opacities, g.opacities, **TOL32)
    torch.testing.assert_close(back.scales, g.scales, **TOL32)


@pytest.mark.parametrize("degree", DEGREES)
def test_ply_has_the_standard_3dgs_layout(tmp_path: Path, degree: int):
    """Read by plyfile: exact names and order, float32, binary little endian, and the conventions."""
    plyfile = pytest.importorskip("plyfile")
    g = _gaussians(degree)
    write_ply(tmp_path / "g.ply", g)
    header = (tmp_path / "g.ply").read_bytes().split(b"end_header\n")[0].decode()
    assert header.startswith("ply\nformat binary_little_endian 1.0\nelement vertex 7\n")
    data = plyfile.PlyData.read(str(tmp_path / "g.ply"))
    assert data.text is False and data.byte_order == "<"
    assert [e.name for e in data.elements] == ["vertex"]
    vertex = data["vertex"]
    assert [p.name for p in vertex.properties] == _standard_names(degree)
    assert {p.val_dtype for p in vertex.properties} == {"f4"}

    def col(name: str) -> np.ndarray:
        return np.asarray(vertex[name])

    K = (degree + 1) ** 2
    sh, quats = g.sh.numpy(), g.quats.numpy()
    assert np.array_equal(np.stack([col("x"), col("y"), col("z")], 1), g.means.numpy())
    assert not np.any(np.stack([col("nx"), col("ny"), col("nz")], 1))
    assert np.array_equal(np.stack([col(f"f_dc_{c}") for c in range(3)], 1), sh[:, 0, :])
    for c in range(3):  # channel-major: all coefficients of red, then green, then blue
        for j in range(K - 1):
            assert np.array_equal(col(f"f_rest_{c * (K - 1) + j}"), sh[:, 1 + j, c])
    np.testing.assert_allclose(col("opacity"), _logit(g.opacities.numpy()), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        np.stack([col(f"scale_{i}") for i in range(3)], 1), np.log(g.scales.numpy().astype(np.float64)), rtol=1e-6
    )
    assert np.array_equal(np.stack([col(f"rot_{i}") for i in range(4)], 1), quats)  # w, x, y, z as given


def _other_tool_ply(path: Path, g: Gaussians, text: bool, byte_order: str) -> None:
    """A 3DGS PLY as another tool might write it: shuffled properties, doubles, extra properties."""
    plyfile = pytest.importorskip("plyfile")
    K = g.sh.shape[1]
    sh = g.sh.numpy().astype(np.float64)
    columns = {
        "x": g.means[:, 0], "y": g.means[:, 1], "z": g.means[:, 2],
        "opacity": _logit(g.opacities.numpy()),
        **{f"scale_{i}": np.log(g.scales[:, i].numpy().astype(np.float64)) for i in range(3)},
        **{f"rot_{i}": g.quats[:, i] for i in range(4)},
        **{f"f_dc_{c}": sh[:, 0, c] for c in range(3)},
        **{f"f_rest_{c * (K - 1) + j}": sh[:, 1 + j, c] for c in range(3) for j in range(K - 1)},
        "extra_weight": np.arange(g.num_gaussians, dtype=np.float64),
        "red": np.full(g.num_gaussians, 200),
    }  # fmt: skip
    names = list(columns)
    order = np.random.default_rng(1).permutation(len(names))
    types = {"red": "u1", "extra_weight": "f8", "opacity": "f8", "f_dc_1": "f8"}
    dtype = [(names[i], types.get(names[i], "f4")) for i in order]
    vertex = np.empty(g.num_gaussians, dtype=dtype)
    for name in names:
        vertex[name] = np.asarray(columns[name])
    element = plyfile.PlyElement.describe(vertex, "vertex")
    plyfile.PlyData([element], text=text, byte_order=byte_order).write(str(path))


@pytest.mark.parametrize("text,byte_order", [(False, "<"), (False, ">"), (True, "=")])
@pytest.mark.parametrize("degree", [0, 3])
def test_ply_written_by_another_tool_is_read(tmp_path: Path, degree: int, text: bool, byte_order: str):
    g = _gaussians(degree, n=5)
    _other_tool_ply(tmp_path / "other.ply", g, text, byte_order)
    names = [line.split()[-1] for line in (tmp_path / "other.ply").read_bytes().split(b"end_header")[0].decode().splitlines()
             if line.startswith("property")]  # fmt: skip
    assert names != [n for n in _standard_names(degree) if n in names]  # really shuffled
    back = read_ply(tmp_path / "other.ply")
    assert back.sh_degree == degree
    for name in ("means", "quats", "sh", "opacities", "scales"):
        torch.testing.assert_close(getattr(back, name), getattr(g, name), **TOL32)


def test_ply_extreme_values_stay_finite(tmp_path: Path):
    """Opacity 0 and 1 and zero scales have no finite logit/log: clamped to the nearest float32."""
    g = _gaussians(0, n=3)
    g = Gaussians(g.means, g.quats, torch.tensor([[0.0, 1e-3, 1.0]] * 3), torch.tensor([0.0, 1.0, 0.5]), g.sh)
    write_ply(tmp_path / "edge.ply", g)
    plyfile = pytest.importorskip("plyfile")
    vertex = plyfile.PlyData.read(str(tmp_path / "edge.ply"))["vertex"]
    for name in ("opacity", "scale_0", "scale_1", "scale_2"):
        assert np.isfinite(np.asarray(vertex[name])).all()
    back = read_ply(tmp_path / "edge.ply")
    torch.testing.assert_close(back.opacities, g.opacities, rtol=0, atol=1e-7)
    torch.testing.assert_close(back.scales, g.scales, rtol=1e-6, atol=1e-30)


def test_ply_bad_files(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_ply(tmp_path / "missing.ply")
    (tmp_path / "empty.ply").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        read_ply(tmp_path / "empty.ply")
    (tmp_path / "garbage.ply").write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(ValueError, match="not a valid PLY.*'ply' magic"):
        read_ply(tmp_path / "garbage.ply")
    mesh = Mesh(vertices=torch.rand(4, 3), faces=torch.tensor([[0, 1, 2], [0, 2, 3]]))
    write_mesh_ply(tmp_path / "mesh.ply", mesh)
    with pytest.raises(ValueError, match="not a valid Gaussian splat PLY.*lacks f_dc_0.*read_mesh"):
        read_ply(tmp_path / "mesh.ply")
    # Truncated data, and a wrong number of f_rest properties (degree 4 is not supported).
    write_ply(tmp_path / "g.ply", _gaussians(1))
    data = (tmp_path / "g.ply").read_bytes()
    (tmp_path / "truncated.ply").write_bytes(data[:-10])
    with pytest.raises(ValueError, match="truncated"):
        read_ply(tmp_path / "truncated.ply")
    header = data.split(b"end_header\n")[0].replace(b"property float f_rest_8\n", b"")
    (tmp_path / "rest.ply").write_bytes(header + b"end_header\n" + b"\0" * (7 * 4 * 25))
    with pytest.raises(ValueError, match="8 f_rest_\\* properties; expected one of 0 \\(degree 0\\), 9"):
        read_ply(tmp_path / "rest.ply")
    header = data.split(b"end_header\n")[0].replace(b"f_rest_8\n", b"f_rest_9\n")
    (tmp_path / "gap.ply").write_bytes(header + b"end_header\n" + data.split(b"end_header\n")[1])
    with pytest.raises(ValueError, match="not numbered 0..8"):
        read_ply(tmp_path / "gap.ply")


# --- glTF ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["glb", "gltf"])
@pytest.mark.parametrize("degree", DEGREES)
def test_gltf_round_trip(tmp_path: Path, degree: int, suffix: str):
    g = _gaussians(degree)
    write_gltf(tmp_path / f"g.{suffix}", g)
    back = read_gltf(tmp_path / f"g.{suffix}")
    assert back.sh_degree == degree and back.num_gaussians == g.num_gaussians
    assert torch.equal(back.means, g.means)
    assert torch.equal(back.scales, g.scales)  # linear in the file: exact
    assert torch.equal(back.opacities, g.opacities)
    assert torch.equal(back.sh, g.sh)
    # The extension stores unit quaternions: normalized, and back in wxyz order.
    torch.testing.assert_close(back.quats, torch.nn.functional.normalize(g.quats, dim=1), rtol=0, atol=2e-7)


@pytest.mark.parametrize("degree", DEGREES)
def test_glb_has_the_khr_gaussian_splatting_layout(tmp_path: Path, degree: int):
    """The file read with struct/json: attribute names, mode, extension object, conventions, alignment."""
    g = _gaussians(degree)
    write_gltf(tmp_path / "g.glb", g)
    document, binary = _parse_glb(tmp_path / "g.glb")
    assert document["asset"]["version"] == "2.0"
    assert document["extensionsUsed"] == [EXT] and "extensionsRequired" not in document
    assert document["nodes"] == [{"mesh": 0}] and document["scenes"] == [{"nodes": [0]}]
    (primitive,) = document["meshes"][0]["primitives"]
    assert primitive["mode"] == 0  # POINTS
    assert primitive["extensions"] == {EXT: {"kernel": "ellipse", "colorSpace": "srgb_rec709_display"}}
    attributes = primitive["attributes"]
    sh_names = [f"{EXT}:SH_DEGREE_{d}_COEF_{n}" for d in range(degree + 1) for n in range(2 * d + 1)]
    expected = ["POSITION", "COLOR_0", f"{EXT}:ROTATION", f"{EXT}:SCALE", f"{EXT}:OPACITY", *sh_names]
    assert sorted(attributes) == sorted(expected)
    for view in document["bufferViews"]:
        assert view["byteOffset"] % 4 == 0 and view["target"] == 34962
    assert document["buffers"] == [{"byteLength": len(binary)}]

    def attribute(name: str) -> np.ndarray:
        return _float_accessor(document, binary, attributes[name])

    position = document["accessors"][attributes["POSITION"]]
    assert position["min"] == g.means.min(0).values.tolist() and position["max"] == g.means.max(0).values.tolist()
    assert np.array_equal(attribute("POSITION"), g.means.numpy())
    xyzw = attribute(f"{EXT}:ROTATION")
    np.testing.assert_allclose(np.linalg.norm(xyzw, axis=1), 1.0, atol=1e-6)
    wxyz = torch.nn.functional.normalize(g.quats, dim=1).numpy()
    np.testing.assert_allclose(xyzw, wxyz[:, [1, 2, 3, 0]], atol=1e-7)
    assert np.array_equal(attribute(f"{EXT}:SCALE"), g.scales.numpy())  # linear
    assert np.array_equal(attribute(f"{EXT}:OPACITY")[:, 0], g.opacities.numpy())  # 0..1
    for d in range(degree + 1):
        for n in range(2 * d + 1):  # n = m + l, lowest order first
            assert np.array_equal(attribute(f"{EXT}:SH_DEGREE_{d}_COEF_{n}"), g.sh[:, d * d + n].numpy())
    color = attribute("COLOR_0")  # fallback: sRGB-decoded DC colour, alpha = opacity
    srgb = np.clip(0.5 + SH_C0 * g.sh[:, 0].numpy().astype(np.float64), 0, 1)
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    np.testing.assert_allclose(color[:, :3], linear, atol=1e-6)
    assert np.array_equal(color[:, 3], g.opacities.numpy())


def _hand_written_gltf(path: Path, attributes: dict[str, tuple[np.ndarray, int, str, bool]], extension: dict) -> None:
    """A .gltf with an embedded buffer, written without the module: name -> (array, componentType, type, normalized)."""
    blob, views, accessors, indices = b"", [], [], {}
    for name, (array, component, kind, normalized) in attributes.items():
        blob += b"\0" * (-len(blob) % 4)
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": array.nbytes})
        accessor = {"bufferView": len(views) - 1, "componentType": component, "count": len(array), "type": kind}
        if normalized:
            accessor["normalized"] = True
        if name == "POSITION":
            accessor["min"], accessor["max"] = array.min(0).tolist(), array.max(0).tolist()
        accessors.append(accessor)
        indices[name] = len(accessors) - 1
        blob += array.tobytes()
    document = {
        "asset": {"version": "2.0"},
        "extensionsUsed": [EXT],
        "meshes": [{"primitives": [{"attributes": indices, "mode": 0, "extensions": {EXT: extension}}]}],
        "buffers": [{"byteLength": len(blob), "uri": "data:application/octet-stream;base64," + base64.b64encode(blob).decode()}],
        "bufferViews": views,
        "accessors": accessors,
    }  # fmt: skip
    path.write_text(json.dumps(document))


def test_gltf_quantized_and_legacy_files_are_read(tmp_path: Path):
    """Quantized attributes the spec allows, and log scales of earlier drafts (with a warning)."""
    xyzw = np.array([[0, 0, 0, 1], [1, 0, 0, 0], [0, 0.6, 0, 0.8]], np.float64)
    log_scales = np.log(np.array([[0.01, 0.02, 0.03], [0.1, 0.2, 0.3], [1e-3, 2e-3, 3e-3]]))
    attributes = {
        "POSITION": (np.arange(9, dtype="<f4").reshape(3, 3), 5126, "VEC3", False),
        f"{EXT}:ROTATION": (np.rint(xyzw * 32767).astype("<i2"), 5122, "VEC4", True),
        f"{EXT}:SCALE": (log_scales.astype("<f4"), 5126, "VEC3", False),
        f"{EXT}:OPACITY": (np.array([0, 128, 255], "u1"), 5121, "SCALAR", True),
        f"{EXT}:SH_DEGREE_0_COEF_0": (np.ones((3, 3), "<f4"), 5126, "VEC3", False),
    }
    _hand_written_gltf(tmp_path / "q.gltf", attributes, {"kernel": "ellipse", "colorSpace": "lin_rec709_display"})
    with pytest.warns(UserWarning, match="log scales of an earlier"):
        g = read_gltf(tmp_path / "q.gltf")
    torch.testing.assert_close(g.quats, torch.tensor(xyzw[:, [3, 0, 1, 2]], dtype=torch.float32), rtol=0, atol=1e-4)
    torch.testing.assert_close(g.opacities, torch.tensor([0, 128 / 255, 1.0]))
    torch.testing.assert_close(g.scales, torch.tensor(np.exp(log_scales), dtype=torch.float32), **TOL32)
    assert g.sh_degree == 0

    partial = dict(attributes)
    partial[f"{EXT}:SH_DEGREE_1_COEF_0"] = partial[f"{EXT}:SH_DEGREE_0_COEF_0"]
    _hand_written_gltf(tmp_path / "partial.gltf", partial, {"kernel": "ellipse", "colorSpace": "srgb_rec709_display"})
    with pytest.raises(ValueError, match="SH degree 1 is partially defined"):
        read_gltf(tmp_path / "partial.gltf")


def test_gltf_bad_files(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_gltf(tmp_path / "missing.glb")
    (tmp_path / "empty.glb").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        read_gltf(tmp_path / "empty.glb")
    (tmp_path / "garbage.glb").write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(ValueError, match="not a valid glTF Gaussian splat file.*neither a GLB nor glTF JSON"):
        read_gltf(tmp_path / "garbage.glb")
    (tmp_path / "bad_magic.glb").write_bytes(b"glTF" + struct.pack("<II", 1, 20) + b"\0" * 8)
    with pytest.raises(ValueError, match="not a valid GLB.*container version 1"):
        read_gltf(tmp_path / "bad_magic.glb")
    mesh = Mesh(vertices=torch.rand(4, 3), faces=torch.tensor([[0, 1, 2], [0, 2, 3]]))
    write_glb(tmp_path / "mesh.glb", mesh)
    with pytest.raises(ValueError, match="no mesh primitive with the KHR_gaussian_splatting extension"):
        read_gltf(tmp_path / "mesh.glb")
    write_gltf(tmp_path / "g.glb", _gaussians(1))
    data = bytearray((tmp_path / "g.glb").read_bytes())
    (tmp_path / "truncated.glb").write_bytes(bytes(data[:-40]))
    with pytest.raises(ValueError, match="truncated"):
        read_gltf(tmp_path / "truncated.glb")


# --- writers: bad values, atomicity, dispatch ------------------------------------------------------


@pytest.mark.parametrize("suffix", ["ply", "glb", "gltf"])
def test_write_to_missing_folder_or_bad_values_leaves_nothing(tmp_path: Path, suffix: str):
    g = _gaussians(2)
    target = tmp_path / "missing" / f"g.{suffix}"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_gaussians(target, g)
    assert not target.parent.exists() and list(tmp_path.iterdir()) == []

    existing = tmp_path / f"keep.{suffix}"
    write_gaussians(existing, g)
    before = existing.read_bytes()
    bad_values = [
        (dict(opacities=g.opacities * 3), r"opacities must lie in \[0, 1\]"),
        (dict(scales=-g.scales), "scales must be >= 0"),
        (dict(means=g.means * float("nan")), "means holds NaN"),
    ]
    for change, message in bad_values:
        fields = dict(means=g.means, quats=g.quats, scales=g.scales, opacities=g.opacities, sh=g.sh)
        with pytest.raises(ValueError, match=message):
            write_gaussians(existing, Gaussians(**{**fields, **change}))
    assert existing.read_bytes() == before  # not overwritten, not half written
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing.name]  # no temporary files left


def test_gltf_writer_rejects_what_gltf_cannot_hold(tmp_path: Path):
    g = _gaussians(0, n=3)
    with pytest.raises(ValueError, match="zero length"):
        write_gltf(tmp_path / "q.glb", Gaussians(g.means, torch.zeros(3, 4), g.scales, g.opacities, g.sh))
    empty = Gaussians(torch.zeros(0, 3), torch.zeros(0, 4), torch.zeros(0, 3), torch.zeros(0), torch.zeros(0, 1, 3))
    with pytest.raises(ValueError, match="at least one Gaussian"):
        write_gltf(tmp_path / "e.glb", empty)
    assert list(tmp_path.iterdir()) == []
    write_ply(tmp_path / "e.ply", empty)  # an empty PLY is fine
    assert read_ply(tmp_path / "e.ply").num_gaussians == 0


def test_dispatch_by_suffix(tmp_path: Path):
    g = _gaussians(1)
    for suffix in ("ply", "GLB", "gltf"):
        write_gaussians(tmp_path / f"g.{suffix}", g)
        assert torch.equal(read_gaussians(tmp_path / f"g.{suffix}").sh, g.sh)
    assert (tmp_path / "g.GLB").read_bytes()[:4] == b"glTF"
    assert (tmp_path / "g.gltf").read_bytes()[:1] == b"{"
    with pytest.raises(ValueError, match="unknown Gaussian splat file suffix '.splat'"):
        write_gaussians(tmp_path / "g.splat", g)
    with pytest.raises(ValueError, match="unknown Gaussian splat file suffix"):
        read_gaussians(tmp_path / "g.obj")


# --- Khronos glTF validator ---------------------------------------------------------------------


def _validate(command: list[str], path: Path, *flags: str) -> tuple[int, dict]:
    run = subprocess.run([*command, *flags, str(path)], capture_output=True, text=True, timeout=120)
    assert run.returncode in (0, 1), run.stderr
    return run.returncode, json.loads(run.stdout)


def _is_extension_semantic_error(message: dict) -> bool:
    """The validator's known false error for KHR_gaussian_splatting's "KHR_gaussian_splatting:NAME"
    attribute semantics (KhronosGroup/glTF-Validator issue #252)."""
    prefix = "/meshes/0/primitives/0/attributes/KHR_gaussian_splatting:"
    return message["code"] == "MESH_PRIMITIVE_INVALID_ATTRIBUTE" and message["pointer"].startswith(prefix)


@pytest.mark.parametrize("suffix", ["glb", "gltf"])
@pytest.mark.parametrize("degree", [0, 3])
def test_gltf_passes_the_khronos_validator(tmp_path: Path, gltf_validator: list[str], degree: int, suffix: str):
    path = tmp_path / f"g.{suffix}"
    write_gltf(path, _gaussians(degree))
    status, report = _validate(gltf_validator, path, "--accept-extension-semantics")
    issues = report["issues"]
    errors = [m for m in issues["messages"] if m["severity"] == 0]
    # The only errors are the validator's false ones on the extension's attribute names
    # (one per KHR_gaussian_splatting attribute, until the validator knows such semantics).
    assert all(_is_extension_semantic_error(m) for m in errors), errors
    assert len(errors) in (0, 3 + (degree + 1) ** 2)
    assert status == 0
    assert issues["numWarnings"] == 0, issues["messages"]
    assert {m["code"] for m in issues["messages"] if m["severity"] == 2} <= {"UNSUPPORTED_EXTENSION"}
    assert report["info"]["totalVertexCount"] == 7 and report["info"]["extensionsUsed"] == [EXT]


def test_glb_layout_passes_the_validator_strictly(tmp_path: Path, gltf_validator: list[str]):
    """With the extension's semantics renamed to application-specific "_" names, the same
    accessors and bufferViews give a report with 0 errors and no flag."""
    write_gltf(tmp_path / "g.glb", _gaussians(3))
    document, binary = _parse_glb(tmp_path / "g.glb")
    attributes = document["meshes"][0]["primitives"][0]["attributes"]
    document["meshes"][0]["primitives"][0]["attributes"] = {
        ("_" + name.replace(":", "_") if name.startswith(EXT) else name): index for name, index in attributes.items()
    }
    json_chunk = json.dumps(document).encode()
    json_chunk += b" " * (-len(json_chunk) % 4)
    total = 12 + 8 + len(json_chunk) + 8 + len(binary)
    (tmp_path / "renamed.glb").write_bytes(
        struct.pack("<4sII", b"glTF", 2, total) + struct.pack("<I4s", len(json_chunk), b"JSON") + json_chunk
        + struct.pack("<I4s", len(binary), b"BIN\0") + binary
    )  # fmt: skip
    status, report = _validate(gltf_validator, tmp_path / "renamed.glb")
    assert report["issues"]["numErrors"] == 0 and report["issues"]["numWarnings"] == 0, report["issues"]["messages"]
    assert status == 0
    # And the strict run on the original fails only on the known false errors.
    status, report = _validate(gltf_validator, tmp_path / "g.glb")
    errors = [m for m in report["issues"]["messages"] if m["severity"] == 0]
    assert all(_is_extension_semantic_error(m) for m in errors) and status == (1 if errors else 0)
