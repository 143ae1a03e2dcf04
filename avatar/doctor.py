"""``avatar doctor``: what is installed and usable, and why not where it is not."""

from __future__ import annotations

import importlib
import importlib.util
import platform


def _version(name: str, install: str) -> str:
    if importlib.util.find_spec(name) is None:
        return f"not installed ({install})"
    try:
        mod = importlib.import_module(name)
    except Exception as exc:
        return f"installed but fails to import: {type(exc).__name__}: {exc}"
    return f"{getattr(mod, '__version__', '?')}"


def _mediapipe() -> str:
    if importlib.util.find_spec("mediapipe") is None:
        return "not installed (pip install 'avatar-engine[capture]')"
    from pathlib import Path

    spec = importlib.util.find_spec("mediapipe")
    root = Path(spec.origin).parent
    model = root / "modules" / "face_landmark" / "face_landmark_with_attention.tflite"
    import importlib.metadata as md

    version = md.version("mediapipe")
    if not model.exists():
        return f"{version}: the wheel has no FaceMesh model (use mediapipe==0.10.14)"
    return f"{version}, FaceMesh 478-point model in the wheel"


def report() -> dict[str, list[tuple[str, str]]]:
    import torch

    from renderers import backend_status

    from . import __version__
    from .facemodel import available_models

    out: dict[str, list[tuple[str, str]]] = {}
    out["engine"] = [
        ("avatar", __version__),
        ("python", platform.python_version()),
        ("torch", f"{torch.__version__}, {torch.get_num_threads()} threads, "
                  f"CUDA {'available' if torch.cuda.is_available() else 'not available'}"),
        ("numpy", _version("numpy", "pip install numpy")),
    ]
    out["renderers"] = [(k, ("yes  " if ok else "no   ") + why) for k, (ok, why) in backend_status().items()]
    cv = _version("cv2", "pip install 'avatar-engine[capture]'")
    if cv[:1].isdigit() and int(cv.split(".")[0]) >= 5:
        cv += " (opencv 5 dropped the Haar cascades: pin opencv<5)"
    out["capture"] = [("mediapipe", _mediapipe()), ("opencv", cv)]
    out["audio"] = [
        ("librosa", _version("librosa", "pip install 'avatar-engine[audio]'")),
        ("pocketsphinx", _version("pocketsphinx", "pip install 'avatar-engine[audio]'")),
        ("imageio_ffmpeg", _version("imageio_ffmpeg", "pip install 'avatar-engine[audio]'")),
    ]
    out["face models"] = list(available_models().items())
    return out
