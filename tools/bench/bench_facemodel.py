"""Face-model loading and evaluation speed.

    python tools/bench/bench_facemodel.py [--ict PATH_TO_FaceXModel]

Prints the cold (compile from OBJ) and warm (content-keyed cache) load time of
ICT-FaceKit, and the time to evaluate 1,000 random expression vectors (batched, and
one at a time as an animation loop would) for each model found. ICT is looked up as
``avatar.facemodel.load("ict")`` does, or in ../shared (unpacked once into a temporary
folder) when it is not installed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from avatar.facemodel import load  # noqa: E402
from avatar.facemodel.ict import find_ict_dir, load_ict  # noqa: E402


def timed(fn, repeat: int = 1):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def ict_folder(arg: str | None) -> Path | None:
    try:
        return find_ict_dir(arg)
    except FileNotFoundError:
        pass
    archive = Path(os.environ.get("AVATAR_SHARED", ROOT.parent / "shared")) / "models/ict-facekit/FaceXModel.tar.xz"
    if not archive.exists():
        return None
    tmp = Path(tempfile.mkdtemp(prefix="bench-ict-"))
    with tarfile.open(archive) as tar:
        tar.extractall(tmp, filter="data")
    return tmp / "FaceXModel"


def bench_eval(model, n: int = 1000) -> None:
    torch.manual_seed(0)
    expr = torch.rand(n, model.num_expression)
    ident = torch.randn(model.num_identity) * 0.5
    with torch.no_grad():
        t_batch, _ = timed(lambda: model.vertices(identity=ident, expression=expr), repeat=3)
        t_loop, _ = timed(lambda: [model.vertices(identity=ident, expression=e) for e in expr], repeat=1)
    V = model.num_vertices
    print(f"{model.name:8s} V={V:6d} E={model.num_expression:3d}: {n} expression vectors "
          f"batched {t_batch * 1e3:8.1f} ms ({n / t_batch:8.0f}/s), "
          f"one by one {t_loop * 1e3:8.1f} ms ({n / t_loop:7.0f}/s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ict", default=None, help="the ICT FaceXModel folder (default: as load('ict') finds it)")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    t, builtin = timed(lambda: load("builtin"))
    print(f"builtin  load {t * 1e3:.1f} ms")
    bench_eval(builtin)

    folder = ict_folder(args.ict)
    if folder is None:
        print("ICT-FaceKit not found (no --ict, no user copy, no ../shared): skipped")
        return
    cache = Path(tempfile.mkdtemp(prefix="bench-ict-cache-"))
    t_cold, _ = timed(lambda: load_ict(folder, cache_dir=cache))
    t_warm, ict = timed(lambda: load_ict(folder, cache_dir=cache), repeat=3)
    print(f"ict      load cold (compile {len(list(folder.glob('*.obj')))} OBJ files) {t_cold:.2f} s, "
          f"warm (cache) {t_warm * 1e3:.0f} ms, ratio {t_cold / t_warm:.0f}x")
    bench_eval(ict)


if __name__ == "__main__":
    main()
