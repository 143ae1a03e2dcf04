"""Face landmarks on photos: mediapipe FaceMesh, 478 points per face.

Conventions of :class:`FaceDetection.landmarks` ``[478, 3]`` float32:

- ``x, y`` in pixels of the input image, continuous coordinates with the origin at the
  image's top-left *corner* (pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)``), x right,
  y down: mediapipe's normalized ``x * W``, ``y * H``.
- ``z`` mediapipe's relative depth: origin roughly at the head's centre, smaller values
  closer to the camera, in the same pixel units as ``x`` (mediapipe's normalized
  ``z * W``). It is a relative shape cue, not a metric depth.
- Point order is mediapipe's canonical face mesh (468 points) plus the 10 iris points
  468..477 (``refine_landmarks=True``). Mediapipe's "right"/"left" are the subject's:
  point 33 is the subject's right eye outer corner (iBUG 68-point index 36, 0-based),
  133 right eye inner (39), 362 left eye inner (42), 263 left eye outer (45), 61 and 291
  the mouth corners (48, 54).

Mediapipe is the optional ``capture`` extra; it is imported where it is used. One
graph per use (face detector, photo FaceMesh, video FaceMesh) is built once per process
and reused, because building it costs far more than running it; mediapipe graphs are
not thread-safe, so every use holds that graph's lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from avatar.capture.errors import CaptureError, NoFaceError

NUM_LANDMARKS = 478
INSTALL_HINT = "pip install 'avatar-engine[capture]'"

# mediapipe index -> iBUG 68-point index (0-based), for the points that match well.
MEDIAPIPE_TO_IBUG = {33: 36, 133: 39, 362: 42, 263: 45, 61: 48, 291: 54}


@dataclass(frozen=True, eq=False)
class FaceDetection:
    """One face found in an image."""

    landmarks: np.ndarray
    """``[478, 3]`` float32: x, y in input-image pixels, z scaled like x (see module doc)."""
    box: tuple[float, float, float, float]
    """``(x0, y0, x1, y1)`` pixels: the bounding box of the landmarks' x, y."""
    area: float
    """Area of :attr:`box` in square pixels (the sort key of :func:`detect_faces`)."""


class _Graph:
    """A cached mediapipe FaceMesh with the lock that serialises its use."""

    def __init__(self, mesh) -> None:
        self.mesh = mesh
        self.lock = threading.Lock()


_graphs: dict[str, _Graph] = {}
_graphs_lock = threading.Lock()


def _import_mediapipe():
    try:
        import mediapipe  # noqa: F401
        from mediapipe.python.solutions import face_detection, face_mesh
    except ImportError as err:
        raise ImportError(
            f"face landmark detection needs mediapipe, which is not installed: {INSTALL_HINT}"
        ) from err
    return face_mesh, face_detection


def _graph(mode: str) -> _Graph:
    """The process's mediapipe graph for ``mode``.

    "detector": full-range face detector (faces from ~20 px wide, several per photo);
    "image": FaceMesh on one face crop (static); "video": FaceMesh tracking one face.
    """
    with _graphs_lock:
        graph = _graphs.get(mode)
        if graph is None:
            face_mesh, face_detection = _import_mediapipe()
            if mode == "detector":
                mesh = face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)
            elif mode == "image":
                mesh = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True)
            elif mode == "video":
                mesh = face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=True)
            else:
                raise ValueError(f"mode must be 'detector', 'image' or 'video', got {mode!r}")
            graph = _graphs[mode] = _Graph(mesh)
        return graph


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = f"{image.dtype} {tuple(image.shape)}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"expected an RGB image [H, W, 3] uint8 (see avatar.capture.read_image); got {got}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"image is too small to hold a face: {tuple(image.shape)}")
    return np.ascontiguousarray(image)


def _to_pixels(face, width: int, height: int) -> np.ndarray:  # [478, 3]
    """A mediapipe NormalizedLandmarkList to pixel coordinates (z scaled by the width)."""
    norm = np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float64)
    return (norm * np.array([width, height, width])).astype(np.float32)


def _detection(landmarks: np.ndarray) -> FaceDetection:
    x0, y0 = landmarks[:, :2].min(axis=0)
    x1, y1 = landmarks[:, :2].max(axis=0)
    box = (float(x0), float(y0), float(x1), float(y1))
    return FaceDetection(landmarks=landmarks, box=box, area=float((x1 - x0) * (y1 - y0)))


_MAX_FACES = 10
_CROP = 256  # FaceMesh runs on a square crop of this size around each detected face
_CROP_MARGIN = 0.5  # each side, fraction of the detector box's larger side


def _mesh(image: np.ndarray) -> np.ndarray | None:  # [478, 3] in image pixels
    graph = _graph("image")
    with graph.lock:
        result = graph.mesh.process(image)
    faces = result.multi_face_landmarks
    if not faces:
        return None
    height, width = image.shape[:2]
    return _to_pixels(faces[0], width, height)


def _boxes(image: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Face boxes (x0, y0, x1, y1) in pixels from the full-range detector, best first."""
    graph = _graph("detector")
    with graph.lock:
        result = graph.mesh.process(image)
    height, width = image.shape[:2]
    boxes = []
    for det in (result.detections or [])[:_MAX_FACES]:
        b = det.location_data.relative_bounding_box
        x0, y0 = b.xmin * width, b.ymin * height
        boxes.append((x0, y0, x0 + b.width * width, y0 + b.height * height))
    return boxes


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def detect_faces(image: np.ndarray) -> list[FaceDetection]:
    """All faces in a photo (up to 10), largest first.

    Two stages, because FaceMesh's own detector only finds faces that fill a good part
    of the picture: mediapipe's full-range face detector finds the faces (from ~20 px
    wide), then FaceMesh runs on a 256 px square crop around each one, and its points are
    mapped back to the photo. When the detector finds nothing, FaceMesh runs on the whole
    photo (close-ups the detector can miss).

    Args:
        image: ``[H, W, 3]`` uint8 RGB (as :func:`avatar.capture.read_image` returns).

    Returns:
        The faces sorted by :attr:`FaceDetection.area`, largest first; empty when none.
    """
    image = _check_image(image)
    found: list[FaceDetection] = []
    for x0, y0, x1, y1 in _boxes(image):
        side = max(x1 - x0, y1 - y0, 1.0) * (1.0 + 2.0 * _CROP_MARGIN)
        crop, transform = _square_crop(image, (x0 + x1) / 2, (y0 + y1) / 2, side, _CROP)
        points = _mesh(crop)
        if points is None:
            continue
        scale = transform[0, 0]
        points[:, :2] = (points[:, :2] - transform[:, 2]) / scale
        points[:, 2] /= scale
        face = _detection(points.astype(np.float32))
        if all(_iou(face.box, other.box) < 0.5 for other in found):
            found.append(face)
    if not found:
        points = _mesh(image)
        if points is not None:
            found.append(_detection(points))
    found.sort(key=lambda f: f.area, reverse=True)
    return found


def detect_face(image: np.ndarray, index: int | None = None, *, name: str = "the image") -> FaceDetection:
    """The largest face of a photo, or the ``index``-th largest.

    Args:
        image: ``[H, W, 3]`` uint8 RGB.
        index: position in :func:`detect_faces`' order (0 = largest); None for the largest.
        name: how error messages name the image (e.g. its path).

    Raises:
        NoFaceError: no face was found.
        CaptureError: ``index`` is out of range for the faces found.
    """
    faces = detect_faces(image)
    if not faces:
        raise NoFaceError(
            f"no face found in {name}: use a photo where the face is visible, frontal and at least ~100 px wide"
        )
    if index is None:
        return faces[0]
    if not -len(faces) <= index < len(faces):
        raise CaptureError(
            f"face index {index} is out of range: {len(faces)} face(s) found in {name} "
            f"(index 0..{len(faces) - 1}, largest first); choose one of those"
        )
    return faces[index]


def crop_face(
    image: np.ndarray,  # [H, W, 3] uint8
    detection: FaceDetection,
    size: int = 256,
    margin: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:  # [size, size, 3] uint8, [2, 3] float64
    """A square crop around a face, resampled to ``size`` x ``size``.

    The crop is centred on the landmarks' box; its side is the box's larger side times
    ``1 + 2 * margin`` (``margin`` is the space added on *each* side as a fraction of that
    side; 0.5 gives twice the landmark box, forehead and chin included). The crop is
    axis-aligned (a similarity transform with no rotation): scale and translation only.
    Bilinear sampling; parts outside the image are black.

    Args:
        image: ``[H, W, 3]`` uint8 RGB.
        detection: a face of this image.
        size: side of the output in pixels.
        margin: extra space on each side, as a fraction of the box's larger side.

    Returns:
        ``(crop, transform)``: ``crop`` ``[size, size, 3]`` uint8, and ``transform``
        ``[2, 3]`` mapping image coordinates to crop coordinates in the landmarks'
        convention (origin at the top-left corner): ``crop_xy = transform[:, :2] @ xy +
        transform[:, 2]``, so ``detection.landmarks[:, :2]`` map straight into the crop.
    """
    image = _check_image(image)
    if size < 1 or margin < 0:
        raise ValueError(f"expected size >= 1 and margin >= 0; got size={size}, margin={margin}")
    x0, y0, x1, y1 = detection.box
    side = max(x1 - x0, y1 - y0, 1.0) * (1.0 + 2.0 * margin)
    return _square_crop(image, (x0 + x1) / 2, (y0 + y1) / 2, side, size)


def _square_crop(
    image: np.ndarray, cx: float, cy: float, side: float, size: int
) -> tuple[np.ndarray, np.ndarray]:  # [size, size, 3] uint8, [2, 3]
    """The axis-aligned square of ``side`` pixels centred on (cx, cy), resampled to ``size``."""
    scale = size / side
    transform = np.array([[scale, 0.0, size / 2 - scale * cx], [0.0, scale, size / 2 - scale * cy]])
    # Sample the image at the centres of the crop's pixels (u + 0.5, v + 0.5).
    centres = (np.arange(size) + 0.5 - size / 2) / scale
    xs = cx + centres - 0.5  # image coordinates in pixel-centre convention
    ys = cy + centres - 0.5
    return _bilinear(image, xs, ys), transform


def _bilinear(image: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Separable bilinear sampling of ``image`` on the grid ``ys x xs`` (pixel-centre coordinates); black outside."""
    height, width = image.shape[:2]
    img = image.astype(np.float32)
    x0 = np.floor(xs).astype(np.int64)
    y0 = np.floor(ys).astype(np.int64)
    fx = (xs - x0).astype(np.float32)[None, :, None]
    fy = (ys - y0).astype(np.float32)[:, None, None]

    def take(yi: np.ndarray, xi: np.ndarray) -> np.ndarray:
        inside = ((yi >= 0) & (yi < height))[:, None] & ((xi >= 0) & (xi < width))[None, :]
        vals = img[np.clip(yi, 0, height - 1)][:, np.clip(xi, 0, width - 1)]
        return vals * inside[:, :, None]

    top = take(y0, x0) * (1 - fx) + take(y0, x0 + 1) * fx
    bottom = take(y0 + 1, x0) * (1 - fx) + take(y0 + 1, x0 + 1) * fx
    out = top * (1 - fy) + bottom * fy
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
