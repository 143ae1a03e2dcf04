"""Shared test fixtures.

``shared`` finds the ../shared folder (or ``$AVATAR_SHARED``) and skips with a clear
reason where it is absent (a user's fresh machine). In CI it is present, and
``AVATAR_REQUIRE_SHARED=1`` (set by .ci/run) turns that skip into a failure, so
nothing skips silently there.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent

# One tolerance table keyed by dtype (CONVENTIONS 6). An override says why.
TOLERANCES = {
    torch.float32: dict(rtol=1e-4, atol=1e-5),
    torch.float64: dict(rtol=1e-7, atol=1e-9),
}


# How CI (and a developer) installs the Khronos glTF validator the tests run.
VALIDATOR_INSTALL = "npm install --prefix tools/node --no-save gltf-validator@2.0.0-dev.3.10"


def _find_shared() -> Path | None:
    env = os.environ.get("AVATAR_SHARED")
    candidates = [Path(env)] if env else []
    candidates.append(ROOT.parent / "shared")
    for c in candidates:
        if (c / "DESIGN.md").exists() or (c / "data").is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def shared() -> Path:
    """The ../shared folder (test data, ICT model). Skips (or fails in CI) when absent."""
    path = _find_shared()
    if path is None:
        msg = "../shared (or $AVATAR_SHARED) is absent: tests on real data and the ICT model are skipped"
        if os.environ.get("AVATAR_REQUIRE_SHARED") == "1":
            pytest.fail(msg + " — but AVATAR_REQUIRE_SHARED=1 says it must be there")
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def ict_dir(shared: Path) -> Path:
    """The ICT-FaceKit ``FaceXModel`` folder, unpacked once from the shared archive into a cache."""
    archive = shared / "models" / "ict-facekit" / "FaceXModel.tar.xz"
    if not archive.exists():
        pytest.fail(f"{archive} is missing from ../shared")
    st = archive.stat()
    key = hashlib.sha1(f"{st.st_size}-{int(st.st_mtime)}".encode()).hexdigest()[:12]
    base = Path(os.environ.get("AVATAR_TEST_CACHE", Path.home() / ".cache" / "avatar-tests")) / f"ict-{key}"
    folder = base / "FaceXModel"
    done = base / ".unpacked"
    if not done.exists():
        base.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(base, filter="data")
        done.touch()
    return folder


@pytest.fixture(scope="session")
def ict_model(ict_dir: Path):
    """The ICT model loaded through the public loader (compiled once, cached by content)."""
    from avatar.facemodel import load

    return load(ict_dir, cache_dir=ict_dir.parent.parent / "compiled")


@pytest.fixture(scope="session")
def gltf_validator() -> list[str]:
    """The command that runs tools/gltf_validate.mjs; skips when node or the npm package is absent."""
    node = shutil.which("node")
    if node is None:
        pytest.skip(f"node is not installed: the glTF validator test needs node and '{VALIDATOR_INSTALL}'")
    package = Path(os.environ.get("GLTF_VALIDATOR_DIR") or ROOT / "tools" / "node" / "node_modules" / "gltf-validator")
    if not (package / "package.json").exists():
        pytest.skip(f"the gltf-validator npm package is not at {package}: run '{VALIDATOR_INSTALL}' "
                    "(or set GLTF_VALIDATOR_DIR to the package folder)")  # fmt: skip
    return [node, str(ROOT / "tools" / "gltf_validate.mjs")]
