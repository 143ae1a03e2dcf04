"""The end-to-end jobs. ``demo`` grows with the engine: each stage joins it as it lands."""

from __future__ import annotations

from pathlib import Path

# Stages of the main job that do not exist yet (issue numbers of the tracker).
PENDING = (
    "reconstruction from the sample photo (issue 4)",
    "speech to motion (issue 7)",
    "talking-head video rendering and export (issue 6)",
)


def demo(folder: Path) -> tuple[list[Path], tuple[str, ...]]:
    """Run what exists of the main job into ``folder``; return (files written, stages pending)."""
    import torch

    from .cli import write_sheet
    from .facemodel import load
    from .io.mesh import Mesh, write_mesh
    from .progress import progress

    folder.mkdir(parents=True, exist_ok=True)
    model = load("builtin")
    written = write_sheet(model, folder)
    # A short expression sweep as meshes (what the animation stage will drive).
    with progress(3, "posing the built-in head") as bar:
        for name in ("neutral", "jawOpen", "mouthSmileLeft"):
            w = torch.zeros(model.num_expression)
            if name != "neutral":
                w[model.expression_index(name)] = 1.0
            path = folder / f"builtin_{name}.glb"
            write_mesh(path, Mesh(vertices=model.vertices(expression=w), faces=model.faces,
                                  uvs=model.uvs, face_uvs=model.face_uvs))
            written.append(path)
            bar.update(1)
    return written, PENDING
