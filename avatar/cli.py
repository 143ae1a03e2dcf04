"""The ``avatar`` command: a thin layer over the library (it parses argv and prints;
the library does neither).

    avatar demo -o OUT            the main job on the built-in model and sample inputs
    avatar doctor                 what is installed and usable here
    avatar sheet --model M -o DIR contact sheet of the 52 ARKit shapes + landmark figures
    avatar mesh --model M -o FILE a model's mesh (OBJ, PLY or GLB), optionally posed
    avatar still --model M -o PNG a render with given parameters, camera and lighting
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

    p = sub.add_parser("still", help="render a model with given parameters, camera and lighting to PNG")
    _model_arg(p)
    p.add_argument("-o", "--output", required=True, help="output .png")
    p.add_argument("--expression", action="append", default=[], metavar="NAME=WEIGHT",
                   help="an expression weight, e.g. jawOpen=0.7 (repeatable)")
    p.add_argument("--identity", action="append", default=[], metavar="INDEX=COEFF",
                   help="an identity coefficient in standard deviations, e.g. 0=1.5 (repeatable)")
    p.add_argument("--lighting", default="studio", choices=["front", "studio", "side", "ambient"])
    p.add_argument("--yaw", type=float, default=0.0, help="camera orbit in degrees (+: from the subject's left)")
    p.add_argument("--pitch", type=float, default=0.0, help="camera orbit in degrees (+: from above)")
    p.add_argument("--fov", type=float, default=20.0, help="vertical field of view in degrees")
    p.add_argument("--size", type=int, default=512, help="image size in pixels")
    p.add_argument("--specular", type=float, default=0.15, help="strength of the specular lobe")
    p.add_argument("--backend", default="auto", choices=["auto", "reference", "cpu", "nvdiffrast"])

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
        commands = {"demo": cmd_demo, "doctor": cmd_doctor, "sheet": cmd_sheet, "mesh": cmd_mesh, "still": cmd_still}
        return commands[args.command](args)
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
    images = {f"{model.name}_expressions.png": viz.expression_sheet(model, size=size),
              f"{model.name}_lighting.png": viz.lighting_figure(model)}
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


def _weights(model, items: list[str], kind: str):
    """Parse NAME=WEIGHT (expressions) or INDEX=COEFF (identity) options into a vector."""
    import torch

    size = model.num_expression if kind == "expression" else model.num_identity
    out = torch.zeros(size)
    for item in items:
        key, _, value = item.partition("=")
        try:
            weight = float(value or 1.0)
        except ValueError:
            raise ValueError(f"--{kind} takes NAME=WEIGHT with a number; got {item!r}") from None
        if kind == "expression":
            out[model.expression_index(key)] = weight
        else:
            if not key.isdigit() or int(key) >= size:
                raise ValueError(f"--identity takes INDEX=COEFF with INDEX in 0..{size - 1}; got {item!r}")
            out[int(key)] = weight
    return out


def cmd_mesh(args) -> int:
    from .io.mesh import Mesh, write_mesh

    model = _load_model(args.model)
    verts = model.vertices(expression=_weights(model, args.expression, "expression")[None])[0]
    mesh = Mesh(vertices=verts, faces=model.faces, uvs=model.uvs, face_uvs=model.face_uvs)
    write_mesh(args.output, mesh)
    print(f"wrote {args.output}: {mesh.num_vertices} vertices, {mesh.num_faces} triangles ({model.name})")
    return 0


def cmd_still(args) -> int:
    from renderers.mesh import named_lighting, render_mesh

    from . import viz
    from .paths import atomic_path

    if not str(args.output).lower().endswith(".png"):
        raise ValueError(f"still writes PNG images; got {args.output!r}")
    model = _load_model(args.model)
    verts = model.vertices(identity=_weights(model, args.identity, "identity"),
                           expression=_weights(model, args.expression, "expression"))
    centre, extent = viz.model_framing(model)
    cam = viz.orbit_camera(centre, extent, args.size, args.yaw, args.pitch, args.fov)
    out = render_mesh(verts, model.faces, cam, vertex_colors=torch_tensor(viz.vertex_colours(model)),
                      sh=named_lighting(args.lighting), specular=args.specular, background=(0.02, 0.02, 0.025),
                      backend=args.backend)
    with atomic_path(args.output) as tmp:
        viz.to_image(out.image[0]).save(tmp, format="PNG")
    print(f"wrote {args.output} ({model.name}, {args.size}x{args.size}, {args.lighting} light)")
    return 0


def torch_tensor(array):
    import torch

    return torch.as_tensor(array, dtype=torch.float32)


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
