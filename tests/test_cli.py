"""The ``avatar`` command: each subcommand runs, bad input exits non-zero with a clear
message, and no partial file is left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from avatar.io.mesh import read_mesh


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "avatar.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_doctor_reports_every_backend_and_model():
    res = run("doctor")
    assert res.returncode == 0, res.stderr
    for word in ("torch", "reference", "cuda", "nvdiffrast", "gsplat", "pytorch3d", "mediapipe", "builtin", "ict",
                 "flame", "threads"):
        assert word in res.stdout, word


def test_demo_runs_what_exists(tmp_path):
    res = run("demo", "-o", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    assert "not built yet" in res.stdout  # says what it does not do yet
    sheet = Image.open(tmp_path / "out" / "builtin_expressions.png")
    assert sheet.size[0] >= 1000
    mesh = read_mesh(tmp_path / "out" / "builtin_jawOpen.glb")
    assert mesh.num_vertices == 985
    gif = Image.open(tmp_path / "out" / "builtin_expressions.gif")
    assert gif.n_frames == 36
    import numpy as np

    frames = []
    for k in (0, 2):  # the mouth opens between frame 0 (neutral) and frame 2 (jawOpen rising)
        gif.seek(k)
        frames.append(np.asarray(gif.convert("RGB"), dtype=float))
    assert np.abs(frames[1] - frames[0]).mean() > 0.5


def test_sheet_for_ict(ict_dir, tmp_path):
    env = dict(os.environ, AVATAR_CACHE=str(ict_dir.parent.parent / "compiled"))
    res = subprocess.run([sys.executable, "-m", "avatar.cli", "sheet", "--model", str(ict_dir), "-o",
                          str(tmp_path)], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert names == ["ict_expressions.png", "ict_landmarks_ibug68.png", "ict_landmarks_mediapipe478.png",
                     "ict_lighting.png"]


def test_still_renders_a_posed_lit_model(tmp_path):
    out = tmp_path / "still.png"
    res = run("still", "--model", "builtin", "--expression", "jawOpen=1", "--yaw", "20", "--lighting", "side",
              "--size", "128", "-o", str(out))
    assert res.returncode == 0, res.stderr
    img = Image.open(out).convert("RGB")
    assert img.size == (128, 128)
    import numpy as np

    a = np.asarray(img).astype(float)
    assert a[64, 64].sum() > a[2, 2].sum() + 60  # a face in the middle, background at the corner


def test_mesh_writes_posed_model(tmp_path):
    out = tmp_path / "head.obj"
    res = run("mesh", "--model", "builtin", "--expression", "jawOpen=0.8", "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert read_mesh(out).num_vertices == 985


@pytest.mark.parametrize(
    "args, message",
    [
        (["mesh", "--model", "nope", "-o", "{tmp}/x.glb"], "no face model 'nope'"),
        (["mesh", "--expression", "fooBar=1", "-o", "{tmp}/x.glb"], "has no expression 'fooBar'"),
        (["mesh", "--expression", "jawOpen=wide", "-o", "{tmp}/x.glb"], "NAME=WEIGHT"),
        (["mesh", "-o", "{tmp}/missing/x.glb"], "does not exist"),
        (["mesh", "-o", "{tmp}/x.xyz"], "xyz"),
        (["still", "-o", "{tmp}/x.jpg"], "PNG"),
        (["still", "--identity", "500=1", "-o", "{tmp}/x.png"], "INDEX"),
    ],
)
def test_bad_input_exits_non_zero_and_leaves_nothing(tmp_path, args, message):
    res = run(*[a.format(tmp=tmp_path) for a in args])
    assert res.returncode == 2
    assert message in res.stderr and "Traceback" not in res.stderr
    assert list(tmp_path.iterdir()) == []  # no partial or temporary file


def test_read_only_folder_is_a_clear_error(tmp_path, monkeypatch):
    """The CLI's check of a read-only output folder (run in-process: CI runs as root,
    for whom a chmod-ed folder is still writable)."""
    from avatar import cli

    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == tmp_path else real_access(p, mode))
    assert cli.main(["mesh", "-o", str(tmp_path / "x.glb")]) == 2
    assert list(tmp_path.iterdir()) == []
