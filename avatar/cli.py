"""The ``avatar`` command: a thin layer over the library (it parses argv and prints;
the library does neither).

    avatar demo -o OUT            the main job on the built-in model and sample inputs
    avatar doctor                 what is installed and usable here
    avatar sheet --model M -o DIR contact sheet of the 52 ARKit shapes + landmark figures
    avatar mesh --model M -o FILE a model's mesh (OBJ, PLY or GLB), optionally posed
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1


def _model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="builtin",
                   help="builtin, ict, flame, an ICT FaceXModel folder or a FLAME .pkl (default: builtin)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="avatar", description="3D faces and talking heads on a CPU.")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="run the main job on the built-in model and sample inputs")
    p.add_argument("-o", "--output", default="demo_out", help="output folder (default: demo_out)")

    sub.add_parser("doctor", help="print what is installed and usable")

    p = sub.add_parser("sheet", help="contact sheet of the 52 ARKit shapes and landmark figures")
    _model_arg(p)
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--size", type=int, default=200, help="tile size in pixels")

    p = sub.add_parser("mesh", help="write a model's mesh (OBJ, PLY or GLB), optionally with expressions")
    _model_arg(p)
    p.add_argument("-o", "--output", required=True, help="output file: .obj, .ply or .glb")
    p.add_argument("--expression", action="append", default=[], metavar="NAME=WEIGHT",
                   help="an expression weight, e.g. jawOpen=0.7 (repeatable)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from . import progress

    progress.set_reporter(progress.tqdm_reporter)
    progress.set_message_sink(lambda text: print(text, file=sys.stderr))
    try:
        return {"demo": cmd_demo, "doctor": cmd_doctor, "sheet": cmd_sheet, "mesh": cmd_mesh}[args.command](args)
    except (FileNotFoundError, PermissionError, ValueError, KeyError) as exc:
        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"avatar {args.command}: error: {text}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _load_model(name: str):
    from .facemodel import load

    return load(name)


def write_sheet(model, folder: Path, size: int = 200) -> list[Path]:
    """The expression contact sheet and landmark figures of a model, as PNGs in ``folder``."""
    from . import viz
    from .paths import atomic_path

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    images = {f"{model.name}_expressions.png": viz.expression_sheet(model, size=size)}
    for scheme in model.landmarks:
        images[f"{model.name}_landmarks_{scheme}.png"] = viz.landmark_figure(model, 640, scheme)
    for name, img in images.items():
        path = folder / name
        with atomic_path(path) as tmp:
            img.save(tmp, format="PNG")
        out.append(path)
    return out


def cmd_sheet(args) -> int:
    model = _load_model(args.model)
    for path in write_sheet(model, Path(args.output), args.size):
        print(f"wrote {path}")
    return 0


def cmd_mesh(args) -> int:
    import torch

    from .io.mesh import Mesh, write_mesh

    model = _load_model(args.model)
    weights = torch.zeros(model.num_expression)
    for item in args.expression:
        name, _, value = item.partition("=")
        try:
            weights[model.expression_index(name)] = float(value or 1.0)
        except ValueError:
            raise ValueError(f"--expression takes NAME=WEIGHT with a number; got {item!r}") from None
    verts = model.vertices(expression=weights[None])[0]
    mesh = Mesh(vertices=verts, faces=model.faces, uvs=model.uvs, face_uvs=model.face_uvs)
    write_mesh(args.output, mesh)
    print(f"wrote {args.output}: {mesh.num_vertices} vertices, {mesh.num_faces} triangles ({model.name})")
    return 0


def cmd_doctor(args) -> int:
    from .doctor import report

    for section, rows in report().items():
        print(f"{section}:")
        for name, status in rows:
            print(f"  {name:<14} {status}")
    return 0


def cmd_demo(args) -> int:
    """The main job. Until reconstruction, audio-to-motion and rendering land, it runs
    what exists (the built-in model: sheets, landmark figures, a posed GLB) and says so."""
    from .pipeline import demo

    start = time.perf_counter()
    out = Path(args.output)
    written, pending = demo(out)
    for path in written:
        print(f"wrote {path}")
    for stage in pending:
        print(f"not built yet: {stage}")
    print(f"demo finished in {time.perf_counter() - start:.1f} s; outputs in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
