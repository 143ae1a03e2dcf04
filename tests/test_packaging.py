"""The package ships what it needs: every sub-package is listed in pyproject, and the
built-in model is found through the installed ``avatar.assets`` package."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_is_listed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"avatar.assets"}
    for top in ("avatar", "renderers"):
        for init in (ROOT / top).rglob("__init__.py"):
            found.add(".".join(init.parent.relative_to(ROOT).parts))
    assert found == listed, f"pyproject packages differ: missing {found - listed}, stale {listed - found}"


def test_builtin_asset_is_shipped():
    from avatar.paths import asset_path

    path = asset_path("builtin_face.npz")
    assert path.stat().st_size < 2_000_000  # shipped weights stay small
