"""Tests of avatar.io.mesh: topology-keeping OBJ/PLY/GLB round trips, independent readers, errors."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from avatar.io import (
    Mesh,
    Polygons,
    read_glb,
    read_mesh,
    read_obj,
    read_ply,
    write_glb,
    write_mesh,
    write_obj,
    write_ply,
)

SUFFIXES = ["obj", "ply", "glb"]
KIND = {"obj": "OBJ", "ply": "PLY", "glb": "GLB"}


def _seam_mesh(colors: bool = True, normals: bool = True) -> Mesh:
    """Two quads and a triangle with UV seams, plus an isolated vertex (7).

    Vertices 1 and 4 have a different uv in each quad (a seam); vertices 2 and 5 share uvs
    between the second quad and the triangle.
    """
    g = torch.Generator().manual_seed(0)
    V = 8
    polygons = Polygons.from_sizes(
        vertex_index=torch.tensor([0, 1, 4, 3, 1, 2, 5, 4, 2, 6, 5]),
        sizes=torch.tensor([4, 4, 3]),
        uv_index=torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 5, 8, 6]),
    )
    return Mesh.from_polygons(
        vertices=torch.rand(V, 3, generator=g) - 0.5,  # full float32 mantissas
        polygons=polygons,
        uvs=torch.rand(9, 2, generator=g),
        vertex_colors=torch.randint(0, 256, (V, 3), generator=g).float() / 255 if colors else None,
        normals=torch.nn.functional.normalize(torch.randn(V, 3, generator=g), dim=1) if normals else None,
    )


def _assert_same_topology(a: Mesh, b: Mesh) -> None:
    assert b.num_vertices == a.num_vertices
    assert torch.equal(b.vertices, a.vertices)  # float32 values survive exactly
    assert torch.equal(b.faces, a.faces)


# --- Mesh type ---------------------------------------------------------------------------------


def test_mesh_fan_triangulation_and_checks():
    mesh = _seam_mesh()
    assert mesh.num_faces == 2 + 2 + 1
    assert mesh.faces.tolist() == [[0, 1, 4], [0, 4, 3], [1, 2, 5], [1, 5, 4], [2, 6, 5]]
    assert mesh.face_uvs.tolist() == [[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7], [5, 8, 6]]
    with pytest.raises(ValueError, match="fan triangulation"):
        Mesh(vertices=mesh.vertices, faces=mesh.faces.flip(0), uvs=mesh.uvs, face_uvs=mesh.face_uvs.flip(0),
             polygons=mesh.polygons)  # fmt: skip
    with pytest.raises(ValueError, match=r"faces \[F, 3\] long"):
        Mesh(vertices=mesh.vertices, faces=mesh.faces.int())
    with pytest.raises(ValueError, match=r"vertices float \[V, 3\]"):
        Mesh(vertices=mesh.vertices[:, :2], faces=mesh.faces)
    with pytest.raises(ValueError, match="out of range"):
        Mesh(vertices=mesh.vertices[:4], faces=mesh.faces)
    with pytest.raises(ValueError, match="together"):
        Mesh(vertices=mesh.vertices, faces=mesh.faces, uvs=mesh.uvs)
    with pytest.raises(ValueError, match=r"vertex_colors float \[V=8, 3\]"):
        Mesh(vertices=mesh.vertices, faces=mesh.faces, vertex_colors=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="at least 3 corners"):
        Polygons.from_sizes(torch.tensor([0, 1, 2, 3]), torch.tensor([2, 2]))


# --- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_round_trip(tmp_path: Path, suffix: str):
    mesh = _seam_mesh()
    path = tmp_path / f"mesh.{suffix}"
    write_mesh(path, mesh)
    back = read_mesh(path)
    _assert_same_topology(mesh, back)
    assert torch.equal(back.face_uvs, mesh.face_uvs)
    if suffix == "glb":  # v_gltf = 1 - v in float32 loses at most half an ulp of 1
        torch.testing.assert_close(back.uvs, mesh.uvs, rtol=0, atol=6e-8)
    else:
        assert torch.equal(back.uvs, mesh.uvs)
    assert torch.equal(back.vertex_colors, mesh.vertex_colors)  # colours are multiples of 1/255
    torch.testing.assert_close(back.normals, mesh.normals, rtol=0, atol=1e-7)
    if suffix == "glb":
        assert back.polygons is None  # glTF holds triangles only
    else:
        assert torch.equal(back.polygons.offsets, mesh.polygons.offsets)
        assert torch.equal(back.polygons.vertex_index, mesh.polygons.vertex_index)
        assert torch.equal(back.polygons.uv_index, mesh.polygons.uv_index)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_round_trip_plain_triangles(tmp_path: Path, suffix: str):
    """No uvs, colours, normals or polygons: only what was there comes back."""
    mesh = Mesh(vertices=torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0.1]]),
                faces=torch.tensor([[0, 1, 2], [2, 1, 3]]))  # fmt: skip
    path = tmp_path / f"mesh.{suffix}"
    write_mesh(path, mesh)
    back = read_mesh(path)
    _assert_same_topology(mesh, back)
    assert back.uvs is None and back.face_uvs is None and back.vertex_colors is None and back.normals is None
    assert back.polygons is None


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_round_trip_points_without_faces(tmp_path: Path, suffix: str):
    mesh = Mesh(vertices=torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]), faces=torch.zeros(0, 3, dtype=torch.long))
    write_mesh(tmp_path / f"points.{suffix}", mesh)
    back = read_mesh(tmp_path / f"points.{suffix}")
    _assert_same_topology(mesh, back)


def test_obj_quads_are_triangulated_and_written_back_as_quads(tmp_path: Path):
    text = "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 2 0 0\nv 2 1 0\nf 1 2 3 4\nf 2 5 6 3\n"
    (tmp_path / "quads.obj").write_text(text)
    mesh = read_obj(tmp_path / "quads.obj")
    assert mesh.faces.tolist() == [[0, 1, 2], [0, 2, 3], [1, 4, 5], [1, 5, 2]]
    assert mesh.polygons.sizes.tolist() == [4, 4]
    write_obj(tmp_path / "out.obj", mesh)
    face_lines = [line for line in (tmp_path / "out.obj").read_text().splitlines() if line.startswith("f ")]
    assert face_lines == ["f 1 2 3 4", "f 2 5 6 3"]
    # PLY keeps them too.
    write_ply(tmp_path / "out.ply", mesh)
    assert read_ply(tmp_path / "out.ply").polygons.sizes.tolist() == [4, 4]


def test_obj_parsing_variants(tmp_path: Path):
    text = (
        "# a comment\r\n"
        "mtllib face.mtl\r\n"
        "o head\r\n"
        "g skin\r\n"
        "  v 0 0 0   # inline comment\r\n"
        "v\t1 0 0\r\n"
        "v 1 1 0 1.0\r\n"  # optional w
        "v 0 1 0\r\n"
        "vt 0 0\r\nvt 1 0\r\nvt 1 1 0\r\nvt 0 1\r\n"  # optional w on a vt line
        "vn 0 0 1\r\n"
        "usemtl skin\r\n"
        "s 1\r\n"
        "f 1/1/1 2/2/1 3/3/1\r\n"
        "f -4/-4/-1 -2/-2/-1 -1/-1/-1\r\n"  # relative indices: vertices 1, 3, 4
        "l 1 2\r\n"
    )
    (tmp_path / "variants.obj").write_text(text, newline="")
    mesh = read_obj(tmp_path / "variants.obj")
    assert mesh.num_vertices == 4
    assert mesh.faces.tolist() == [[0, 1, 2], [0, 2, 3]]
    assert mesh.face_uvs.tolist() == [[0, 1, 2], [0, 2, 3]]
    assert mesh.uvs.tolist() == [[0, 0], [1, 0], [1, 1], [0, 1]]
    assert mesh.normals.tolist() == [[0, 0, 1]] * 4
    assert mesh.polygons is None and mesh.vertex_colors is None

    (tmp_path / "normals_only.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nvn 0 0 1\nf 1//1 2//1 3//1\n")
    mesh = read_obj(tmp_path / "normals_only.obj")
    assert mesh.faces.tolist() == [[0, 1, 2]] and mesh.uvs is None
    assert mesh.normals[:, 2].tolist() == [1.0, 1.0, 1.0]

    (tmp_path / "colors.obj").write_text("v 0 0 0 255 0 0\nv 1 0 0 0 255 0\nv 0 1 0 0 0 255\nf 1/1 2/2 3/3\nvt 0 0\n")
    with pytest.raises(ValueError, match="missing uv"):
        read_obj(tmp_path / "colors.obj")  # vt 2 and 3 do not exist
    (tmp_path / "colors.obj").write_text("v 0 0 0 255 0 0\nv 1 0 0 0 255 0\nv 0 1 0 0 0 255\nf 1 2 3\n")
    assert read_obj(tmp_path / "colors.obj").vertex_colors.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]


def test_obj_with_normals_and_no_uvs_writes_double_slash(tmp_path: Path):
    mesh = _seam_mesh()
    mesh = Mesh(vertices=mesh.vertices, faces=mesh.faces, normals=mesh.normals)
    write_obj(tmp_path / "n.obj", mesh)
    first_face = next(line for line in (tmp_path / "n.obj").read_text().splitlines() if line.startswith("f "))
    assert first_face == "f 1//1 2//2 5//5"
    back = read_obj(tmp_path / "n.obj")
    _assert_same_topology(mesh, back)
    torch.testing.assert_close(back.normals, mesh.normals, rtol=0, atol=1e-7)


def test_ply_written_by_us_is_read_by_plyfile(tmp_path: Path):
    plyfile = pytest.importorskip("plyfile")
    mesh = _seam_mesh()
    write_ply(tmp_path / "m.ply", mesh)
    data = plyfile.PlyData.read(str(tmp_path / "m.ply"))
    assert data.text is False and data.byte_order == "<"
    vertex = data["vertex"].data
    xyz = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1)
    assert np.array_equal(xyz, mesh.vertices.numpy())
    rgb = np.stack([vertex["red"], vertex["green"], vertex["blue"]], axis=1)
    assert np.array_equal(rgb, np.rint(mesh.vertex_colors.numpy() * 255))
    faces = data["face"].data["vertex_indices"]
    assert [f.tolist() for f in faces] == [[0, 1, 4, 3], [1, 2, 5, 4], [2, 6, 5]]
    texcoord = data["face"].data["texcoord"]
    corner_uvs = mesh.uvs[mesh.polygons.uv_index].numpy()
    assert np.array_equal(np.concatenate(list(texcoord)).reshape(-1, 2), corner_uvs)


@pytest.mark.parametrize("text,byte_order", [(True, "="), (False, "<"), (False, ">")])
def test_ply_written_by_plyfile_is_read(tmp_path: Path, text: bool, byte_order: str):
    """ascii / little / big endian, 'vertex_index' naming, mixed triangles and quads, extra elements."""
    plyfile = pytest.importorskip("plyfile")
    vertex = np.array(
        [(0, 0, 0, 255, 0, 0), (1, 0, 0, 0, 255, 0), (1, 1, 0, 0, 0, 255), (0, 1, 0, 10, 20, 30), (2, 0, 0, 1, 2, 3)],
        dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")],
    )
    face = np.empty(2, dtype=[("vertex_index", "O"), ("flags", "i2")])
    face["vertex_index"] = [np.array([0, 1, 2, 3], "i4"), np.array([1, 4, 2], "i4")]
    face["flags"] = [7, 8]
    edge = np.array([(0, 1), (1, 2)], dtype=[("vertex1", "i4"), ("vertex2", "i4")])
    elements = [
        plyfile.PlyElement.describe(edge, "edge"),  # before the vertices: must be skipped
        plyfile.PlyElement.describe(vertex, "vertex"),
        plyfile.PlyElement.describe(face, "face", val_types={"vertex_index": "i4"}, len_types={"vertex_index": "u1"}),
    ]
    plyfile.PlyData(elements, text=text, byte_order=byte_order).write(str(tmp_path / "in.ply"))
    mesh = read_ply(tmp_path / "in.ply")
    assert mesh.vertices.tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [2, 0, 0]]
    assert mesh.faces.tolist() == [[0, 1, 2], [0, 2, 3], [1, 4, 2]]
    assert mesh.polygons.sizes.tolist() == [4, 3]
    expected_colors = torch.tensor([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30], [1, 2, 3]]) / 255
    torch.testing.assert_close(mesh.vertex_colors, expected_colors.float())


def _pygltflib_array(gltf, accessor_index: int) -> np.ndarray:
    """An accessor's float data through pygltflib's view of the file (tightly packed views)."""
    accessor = gltf.accessors[accessor_index]
    view = gltf.bufferViews[accessor.bufferView]
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3}[accessor.type]
    assert accessor.componentType == 5126
    start = (view.byteOffset or 0) + (accessor.byteOffset or 0)
    return np.frombuffer(gltf.binary_blob(), "<f4", accessor.count * width, start).reshape(-1, width)


def test_glb_written_by_us_is_loaded_by_pygltflib_and_trimesh(tmp_path: Path):
    pygltflib = pytest.importorskip("pygltflib")
    trimesh = pytest.importorskip("trimesh")
    mesh = _seam_mesh(colors=False)
    write_glb(tmp_path / "m.glb", mesh)

    gltf = pygltflib.GLTF2().load(str(tmp_path / "m.glb"))
    assert gltf.asset.version == "2.0"
    primitive = gltf.meshes[0].primitives[0]
    position = gltf.accessors[primitive.attributes.POSITION]
    file_vertices = 8 + 2  # vertices 1 and 4 are duplicated at the seam
    assert position.count == file_vertices
    assert position.componentType == 5126 and position.type == "VEC3"
    assert np.allclose(position.min, mesh.vertices.min(0).values.numpy())
    assert np.allclose(position.max, mesh.vertices.max(0).values.numpy())
    indices = gltf.accessors[primitive.indices]
    assert indices.componentType == 5125 and indices.count == 3 * mesh.num_faces

    loaded = trimesh.load(str(tmp_path / "m.glb"), process=False, force="mesh")
    assert loaded.vertices.shape == (file_vertices, 3)
    assert np.array_equal(loaded.vertices[:8].astype(np.float32), mesh.vertices.numpy())  # originals first, in order
    vertex_id = np.concatenate([np.arange(8), [1, 4]])
    assert np.array_equal(vertex_id[loaded.faces], mesh.faces.numpy())
    texcoord = _pygltflib_array(gltf, primitive.attributes.TEXCOORD_0)
    corner_uvs = texcoord[loaded.faces.reshape(-1)] * [1, -1] + [0, 1]  # glTF v runs down
    assert np.allclose(corner_uvs, mesh.uvs[mesh.face_uvs.reshape(-1)].numpy(), atol=1e-7)

    back = read_glb(tmp_path / "m.glb")  # the seam copies fold back into the original vertices
    assert back.num_vertices == mesh.num_vertices
    assert torch.equal(back.faces, mesh.faces) and torch.equal(back.face_uvs, mesh.face_uvs)


def test_glb_container_layout(tmp_path: Path):
    """Header, chunk types and 4-byte alignment of chunks and bufferViews, as glTF 2.0 requires."""
    mesh = _seam_mesh()
    write_glb(tmp_path / "m.glb", mesh)
    data = (tmp_path / "m.glb").read_bytes()
    magic, version, length = struct.unpack_from("<III", data, 0)
    assert (magic, version, length) == (0x46546C67, 2, len(data))
    json_length, json_type = struct.unpack_from("<II", data, 12)
    assert json_type == 0x4E4F534A and json_length % 4 == 0
    document = json.loads(data[20 : 20 + json_length])
    bin_length, bin_type = struct.unpack_from("<II", data, 20 + json_length)
    assert bin_type == 0x004E4942 and bin_length % 4 == 0 and 28 + json_length + bin_length == len(data)
    assert document["buffers"] == [{"byteLength": bin_length}]
    assert all(view["byteOffset"] % 4 == 0 for view in document["bufferViews"])
    attributes = document["meshes"][0]["primitives"][0]["attributes"]
    assert {"POSITION", "NORMAL", "TEXCOORD_0", "COLOR_0", "_VERTEX_ID", "_UV_ID"} <= attributes.keys()
    for name, index in attributes.items():  # UNSIGNED_INT is allowed for indices only
        assert document["accessors"][index]["componentType"] != 5125, name


def test_glb_written_by_trimesh_is_read(tmp_path: Path):
    trimesh = pytest.importorskip("trimesh")
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0.5]], dtype=np.float32)
    faces = np.array([[0, 1, 2], [2, 1, 3]])
    uv = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float32)
    tm = trimesh.Trimesh(vertices, faces, visual=trimesh.visual.TextureVisuals(uv=uv), process=False)
    (tmp_path / "t.glb").write_bytes(tm.export(file_type="glb"))
    mesh = read_glb(tmp_path / "t.glb")
    assert np.array_equal(mesh.vertices.numpy(), vertices)
    assert np.array_equal(mesh.faces.numpy(), faces)
    assert np.allclose(mesh.uvs[mesh.face_uvs].numpy(), uv[faces], atol=1e-7)


def test_ict_neutral_mesh_keeps_topology(ict_dir: Path, tmp_path: Path):
    """The real ICT-FaceKit head: 26,719 'v' lines, mostly quads, 28,911 uvs (seams)."""
    path = ict_dir / "generic_neutral_mesh.obj"
    v_lines = sum(1 for line in path.read_bytes().splitlines() if line.startswith(b"v "))
    mesh = read_obj(path)
    assert mesh.num_vertices == v_lines == 26719
    assert mesh.uvs.shape[0] == 28911
    assert int((mesh.polygons.sizes == 4).sum()) > 25000
    for suffix in SUFFIXES:
        write_mesh(tmp_path / f"ict.{suffix}", mesh)
        back = read_mesh(tmp_path / f"ict.{suffix}")
        _assert_same_topology(mesh, back)
        assert torch.equal(back.face_uvs, mesh.face_uvs)


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_empty_file_raises(tmp_path: Path, suffix: str):
    path = tmp_path / f"empty.{suffix}"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=f"not a valid {KIND[suffix]}"):
        read_mesh(path)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_garbage_raises(tmp_path: Path, suffix: str):
    path = tmp_path / f"garbage.{suffix}"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match=f"not a valid {KIND[suffix]}"):
        read_mesh(path)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_truncated_file_raises(tmp_path: Path, suffix: str):
    path = tmp_path / f"m.{suffix}"
    write_mesh(path, _seam_mesh())
    data = path.read_bytes()
    cut = len(data) - 20 if suffix != "obj" else data.rindex(b"\nf ") + 4  # obj: the last face loses corners
    path.write_bytes(data[:cut])
    with pytest.raises(ValueError, match=f"not a valid {KIND[suffix]}"):
        read_mesh(path)


def test_obj_bad_index_raises(tmp_path: Path):
    (tmp_path / "bad.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 4\n")
    with pytest.raises(ValueError, match="not a valid OBJ.*missing vertex"):
        read_obj(tmp_path / "bad.obj")
    (tmp_path / "bad.obj").write_text("v 0 0 zero\nf 1 2 3\n")
    with pytest.raises(ValueError, match="not a valid OBJ"):
        read_obj(tmp_path / "bad.obj")


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_missing_file_raises(tmp_path: Path, suffix: str):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_mesh(tmp_path / f"missing.{suffix}")


def test_unknown_suffix_raises(tmp_path: Path):
    with pytest.raises(ValueError, match=r"unknown mesh file suffix '\.stl'.*\.glb, \.obj, \.ply"):
        read_mesh(tmp_path / "mesh.stl")
    with pytest.raises(ValueError, match="unknown mesh file suffix"):
        write_mesh(tmp_path / "mesh.gltf", _seam_mesh())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_missing_output_folder_raises_and_leaves_nothing(tmp_path: Path, suffix: str):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_mesh(tmp_path / "no_such_folder" / f"m.{suffix}", _seam_mesh())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_failed_write_keeps_the_old_file(tmp_path: Path, suffix: str, monkeypatch):
    """A write that fails half way leaves the previous file intact and no temporary file."""
    path = tmp_path / f"m.{suffix}"
    write_mesh(path, _seam_mesh())
    before = path.read_bytes()

    import avatar.io.mesh as mesh_module
    from avatar import paths

    class Boom(RuntimeError):
        pass

    class HalfWriter:  # writes half of the payload, then fails (a full disk, a killed process)
        def __init__(self, handle):
            self.handle = handle

        def write(self, data):
            self.handle.write(data[: len(data) // 2])
            raise Boom

    class FailingAtomicWrite:
        def __init__(self, target, mode="wb"):
            self.manager = paths.atomic_write(target, mode)

        def __enter__(self):
            return HalfWriter(self.manager.__enter__())

        def __exit__(self, *exc):
            return self.manager.__exit__(*exc)

    monkeypatch.setattr(mesh_module, "atomic_write", FailingAtomicWrite)
    with pytest.raises(Boom):
        write_mesh(path, _seam_mesh(colors=False))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_model_glb_passes_the_khronos_validator(tmp_path, gltf_validator):
    """The built-in head (UV seams, so split vertices and custom attributes) and a posed
    one, as GLB, pass the Khronos glTF validator with 0 errors and 0 warnings."""
    import json
    import subprocess

    from avatar.facemodel import load

    model = load("builtin")
    e = torch.zeros(52)
    e[model.expression_index("jawOpen")] = 0.7
    for name, verts in (("neutral", model.template), ("posed", model.vertices(expression=e))):
        path = tmp_path / f"{name}.glb"
        write_glb(path, Mesh(vertices=verts, faces=model.faces, uvs=model.uvs, face_uvs=model.face_uvs))
        run = subprocess.run([*gltf_validator, str(path)], capture_output=True, text=True, timeout=120)
        report = json.loads(run.stdout)
        assert run.returncode == 0 and report["issues"]["numErrors"] == 0, report["issues"]["messages"]
        assert report["issues"]["numWarnings"] == 0, report["issues"]["messages"]
