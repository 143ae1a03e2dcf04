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
    written.append(expression_loop(model, folder / "builtin_expressions.gif"))
    return written, PENDING


def expression_loop(model, path: Path, frames: int = 36, size: int = 256) -> Path:
    """An animated GIF of the head cycling through a few expressions (the renderer at work)."""
    import math

    import torch

    from . import viz
    from .paths import atomic_path
    from .progress import progress

    keys = [("jawOpen", 0.8), ("mouthSmileLeft", 1.0), ("mouthSmileRight", 1.0), ("eyeBlinkLeft", 1.0),
            ("eyeBlinkRight", 1.0), ("browInnerUp", 1.0), ("mouthPucker", 1.0)]
    centre, extent = viz.model_framing(model)
    images = []
    with progress(frames, "rendering an expression loop") as bar:
        for f in range(frames):
            phase = f / frames * len(keys)
            k = int(phase)
            w = torch.zeros(model.num_expression)
            name, peak = keys[k]
            w[model.expression_index(name)] = peak * math.sin(math.pi * (phase - k))
            yaw = 12.0 * math.sin(2 * math.pi * f / frames)
            img = viz.model_preview(model, model.vertices(expression=w), size=size, yaw_degrees=yaw,
                                    centre=centre, extent=extent)
            images.append(img)
            bar.update(1)
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=80, loop=0)
    return path
