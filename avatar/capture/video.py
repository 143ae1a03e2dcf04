"""Reading videos and tracking face landmarks through them.

Readers, chosen by ``backend``:

- ``"ffmpeg"``: imageio-ffmpeg (ships its own ffmpeg binary, so every format ffmpeg
  reads: .mp4, .mov, .mpg, .mkv, .avi, .webm, ...). Frames are passed through as
  decoded (``-fps_mode passthrough``): a variable-frame-rate phone clip gives its real
  frames, not duplicates padded to a constant rate.
- ``"opencv"``: OpenCV's ``VideoCapture`` (its FFMPEG backend), the fallback.
- ``"auto"`` (default): imageio-ffmpeg when installed, else OpenCV.

Both are in the ``capture`` extra. Rotation metadata is applied by both readers.

:func:`read_video` decodes into one ``[T, H, W, 3]`` uint8 array (simple, random access,
what the fitting stage wants for a talking-head clip). That costs ``T * H * W * 3``
bytes (a 10 s 1080p clip at 30 fps is ~5.6 GB): use ``max_frames``, or
:func:`iter_frames`, which yields one frame at a time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

import numpy as np

from avatar.capture.errors import CaptureError, NoFaceError
from avatar.capture.landmarks import INSTALL_HINT, NUM_LANDMARKS, _check_image, _graph, _to_pixels
from avatar.progress import progress

Backend = Literal["auto", "ffmpeg", "opencv"]


@dataclass(frozen=True, eq=False)
class Video:
    """A decoded clip."""

    frames: np.ndarray
    """``[T, H, W, 3]`` uint8 RGB."""
    fps: float
    """Frames per second from the container (the average rate for a variable-rate clip)."""
    size: tuple[int, int]
    """``(width, height)`` in pixels."""


@dataclass(frozen=True, eq=False)
class VideoLandmarks:
    """Landmarks of one face through a clip."""

    landmarks: np.ndarray
    """``[T, 478, 3]`` float32, the convention of :class:`avatar.capture.FaceDetection`."""
    found: np.ndarray
    """``[T]`` bool: the face was detected in that frame (else its landmarks are bridged)."""
    bridged: list[tuple[int, int]]
    """Half-open frame ranges ``(start, stop)`` without a face. Inside the clip their
    landmarks are linearly interpolated between the found frames on either side; at the
    start or end of the clip they hold the nearest found frame."""


def _check_file(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"video {path} does not exist: check the path")
    if path.is_dir():
        raise CaptureError(f"{path} is a folder, not a video: pass the path of a video file")
    if path.stat().st_size == 0:
        raise CaptureError(f"video {path} is empty (0 bytes): re-export or re-download the clip")


def _backend(backend: Backend) -> str:
    if backend not in ("auto", "ffmpeg", "opencv"):
        raise ValueError(f"backend must be 'auto', 'ffmpeg' or 'opencv'; got {backend!r}")
    if backend != "auto":
        return backend
    try:
        import imageio_ffmpeg  # noqa: F401

        return "ffmpeg"
    except ImportError:
        pass
    try:
        import cv2  # noqa: F401

        return "opencv"
    except ImportError:
        raise ImportError(
            f"reading videos needs imageio-ffmpeg or OpenCV, and neither is installed: {INSTALL_HINT}"
        ) from None


def _open(path: Path, backend: str) -> tuple[float, tuple[int, int], Iterator[np.ndarray]]:
    """``(fps, (width, height), frames)`` for one clip; frames are [H, W, 3] uint8 RGB."""
    unreadable = f"cannot read video {path}: it is corrupt or not a video ffmpeg can decode; re-export it (e.g. as H.264 .mp4)"
    if backend == "ffmpeg":
        try:
            import imageio_ffmpeg
        except ImportError:
            raise ImportError(f"the 'ffmpeg' video backend needs imageio-ffmpeg: {INSTALL_HINT}") from None
        gen = imageio_ffmpeg.read_frames(str(path), output_params=["-fps_mode", "passthrough"])
        try:
            meta = next(gen)
        except (RuntimeError, OSError, StopIteration) as err:
            gen.close()
            raise CaptureError(f"{unreadable} ({str(err).strip().splitlines()[-1] if str(err).strip() else err!r})") from err
        width, height = (int(v) for v in meta["size"])
        fps = float(meta.get("fps") or 0.0)

        def frames() -> Iterator[np.ndarray]:
            try:
                for buf in gen:
                    yield np.frombuffer(buf, dtype=np.uint8).reshape(height, width, 3)
            except (RuntimeError, OSError) as err:
                raise CaptureError(f"{unreadable} ({err})") from err
            finally:
                gen.close()

        return fps, (width, height), frames()

    try:
        import cv2
    except ImportError:
        raise ImportError(f"the 'opencv' video backend needs OpenCV: {INSTALL_HINT}") from None
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise CaptureError(unreadable)
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))

    def frames() -> Iterator[np.ndarray]:
        try:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    return
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()

    return fps, (width, height), frames()


def iter_frames(
    path: str | os.PathLike, max_frames: int | None = None, backend: Backend = "auto"
) -> Iterator[np.ndarray]:  # each [H, W, 3] uint8
    """Frames of a clip one at a time, RGB ``[H, W, 3]`` uint8 (possibly read-only views).

    Raises:
        FileNotFoundError: the file does not exist.
        CaptureError: the file is empty or cannot be decoded.
    """
    path = Path(path)
    _check_file(path)
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1 or None; got {max_frames}")
    _, _, frames = _open(path, _backend(backend))
    return _limit(frames, max_frames)


def _limit(frames: Iterator[np.ndarray], max_frames: int | None) -> Iterator[np.ndarray]:
    try:
        for i, frame in enumerate(frames):
            if max_frames is not None and i >= max_frames:
                return
            yield frame
    finally:
        frames.close()


def read_video(path: str | os.PathLike, max_frames: int | None = None, backend: Backend = "auto") -> Video:
    """Decode a clip (at most ``max_frames`` frames from its start) into memory.

    Args:
        path: a video file (.mp4, .mov, .mpg, .avi, .mkv, ...).
        max_frames: read only this many frames from the start; None for all.
        backend: "auto" (imageio-ffmpeg if installed, else OpenCV), "ffmpeg" or "opencv".

    Returns:
        :class:`Video` with ``frames`` ``[T, H, W, 3]`` uint8 RGB.

    Raises:
        FileNotFoundError: the file does not exist.
        CaptureError: the file is empty, cannot be decoded, or has no frames.
    """
    path = Path(path)
    _check_file(path)
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1 or None; got {max_frames}")
    fps, size, frames = _open(path, _backend(backend))
    stack = list(_limit(frames, max_frames))
    if not stack:
        raise CaptureError(f"video {path} has no frames that can be decoded: re-export it (e.g. as H.264 .mp4)")
    array = np.stack(stack)
    height, width = array.shape[1:3]
    if fps <= 0:
        raise CaptureError(f"video {path} does not say its frame rate: re-export it with a constant frame rate")
    return Video(frames=array, fps=fps, size=(int(width), int(height)))


def track_landmarks(video: Video) -> VideoLandmarks:
    """The 478 landmarks of the main face in every frame of a clip.

    Uses mediapipe in video mode (tracking from frame to frame: faster and steadier than
    detecting in every frame), following one face. Frames where the face is lost are
    not fatal: they are listed in :attr:`VideoLandmarks.bridged` and filled in (linear
    interpolation between the found frames around them, held at the clip's ends).

    Args:
        video: a clip from :func:`read_video`.

    Raises:
        NoFaceError: no frame of the clip has a face.
    """
    frames = video.frames
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        got = f"{frames.dtype} {tuple(frames.shape)}" if isinstance(frames, np.ndarray) else type(frames).__name__
        raise ValueError(f"expected video.frames [T, H, W, 3] uint8; got {got}")
    count, height, width = frames.shape[:3]
    landmarks = np.zeros((count, NUM_LANDMARKS, 3), dtype=np.float32)
    found = np.zeros(count, dtype=bool)
    graph = _graph("video")
    with graph.lock, progress(count, "detecting landmarks") as bar:
        graph.mesh.reset()  # no tracking state carried over from another clip
        for t in range(count):
            result = graph.mesh.process(_check_image(frames[t]))
            if result.multi_face_landmarks:
                landmarks[t] = _to_pixels(result.multi_face_landmarks[0], width, height)
                found[t] = True
            bar.update(1)
    if not found.any():
        raise NoFaceError(
            f"no face found in any of the {count} frames of the video: use a clip where the face is "
            "visible, frontal and at least ~100 px wide"
        )
    bridged = _missing_ranges(found)
    _bridge(landmarks, found)
    return VideoLandmarks(landmarks=landmarks, found=found, bridged=bridged)


def _missing_ranges(found: np.ndarray) -> list[tuple[int, int]]:
    """Half-open ranges of consecutive False in ``found`` ``[T]``."""
    padded = np.concatenate([[True], found, [True]]).astype(np.int8)
    edges = np.diff(padded)
    starts = np.flatnonzero(edges == -1)
    stops = np.flatnonzero(edges == 1)
    return [(int(a), int(b)) for a, b in zip(starts, stops)]


def _bridge(landmarks: np.ndarray, found: np.ndarray) -> None:
    """Fill frames without a face in place: linear between found frames, held at the ends."""
    known = np.flatnonzero(found)
    missing = np.flatnonzero(~found)
    if missing.size == 0:
        return
    flat = landmarks.reshape(len(found), -1)
    for k in range(flat.shape[1]):
        # np.interp holds the first/last known value outside [known[0], known[-1]].
        flat[missing, k] = np.interp(missing, known, flat[known, k])
