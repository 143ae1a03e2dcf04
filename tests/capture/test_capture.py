"""Capture stage: reading photos and videos, face landmarks (mediapipe), on real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avatar.capture import (
    CaptureError,
    NoFaceError,
    Video,
    crop_face,
    detect_face,
    detect_faces,
    read_image,
    read_video,
    track_landmarks,
)
from avatar.capture.landmarks import MEDIAPIPE_TO_IBUG
from avatar.capture.video import _bridge, _missing_ranges

pytest.importorskip("mediapipe", reason="the capture extra is not installed: pip install 'avatar-engine[capture]'")
# mediapipe 0.10.14 calls a protobuf API that protobuf deprecates; silenced for these tests only.
pytestmark = pytest.mark.filterwarnings("ignore:SymbolDatabase.GetPrototype:UserWarning")


def _faces(shared: Path) -> Path:
    return shared / "data" / "faces"


def _read_pts(path: Path) -> np.ndarray:  # [68, 2], 0-based pixels
    lines = path.read_text().splitlines()
    start = lines.index("{") + 1
    return np.array([[float(v) for v in line.split()] for line in lines[start : start + 68]]) - 1.0


# ---------------------------------------------------------------- read_image


def test_read_image_formats(shared):
    for name in ("takeo.ppm", "grace_hopper.jpg", "astronaut.png"):
        img = read_image(_faces(shared) / name)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, name
        assert img.flags.c_contiguous


def test_read_image_grey_and_rgba(tmp_path):
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((20, 30), 77, np.uint8)).save(grey)
    out = read_image(grey)
    assert out.shape == (20, 30, 3) and (out == 77).all()

    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:5, :, 3] = 255  # top half opaque red, bottom half fully transparent
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    out = read_image(path)
    assert out.shape == (10, 12, 3)
    assert (out[:5] == [200, 0, 0]).all()
    assert (out[5:] == 255).all()  # composited over white


def test_read_image_exif_orientation(tmp_path):
    img = Image.fromarray(np.zeros((40, 100, 3), np.uint8))  # 100 wide, 40 tall
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif)
    assert read_image(path).shape == (100, 40, 3)


def test_read_image_errors(shared, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_image(tmp_path / "missing.jpg")

    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(CaptureError, match="empty"):
        read_image(empty)

    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(CaptureError, match="not an image"):
        read_image(garbage)

    data = (_faces(shared) / "grace_hopper.jpg").read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CaptureError, match="truncated or corrupt"):
        read_image(truncated)


def test_read_image_truncated_even_when_pil_accepts_truncation(shared, tmp_path, monkeypatch):
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # as some other library may set it
    data = (_faces(shared) / "grace_hopper.jpg").read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CaptureError, match="truncated or corrupt"):
        read_image(truncated)
    assert read_image(_faces(shared) / "grace_hopper.jpg").shape == (600, 512, 3)  # a whole file still reads


# ---------------------------------------------------------------- landmarks


def test_takeo_landmarks_match_ibug(shared):
    img = read_image(_faces(shared) / "takeo.ppm")
    faces = detect_faces(img)
    assert len(faces) == 1
    face = faces[0]
    assert face.landmarks.shape == (478, 3) and face.landmarks.dtype == np.float32
    ibug = _read_pts(_faces(shared) / "takeo.pts")
    inter_ocular = np.linalg.norm(ibug[36] - ibug[45])
    for mp_index, ibug_index in MEDIAPIPE_TO_IBUG.items():
        err = np.linalg.norm(face.landmarks[mp_index, :2] - ibug[ibug_index]) / inter_ocular
        assert err < 0.08, (mp_index, ibug_index, err)
    x0, y0, x1, y1 = face.box
    assert 0 <= x0 < x1 <= img.shape[1] and 0 <= y0 < y1 <= img.shape[0]
    assert face.area == pytest.approx((x1 - x0) * (y1 - y0))


def test_grace_hopper_one_face(shared):
    img = read_image(_faces(shared) / "grace_hopper.jpg")
    face = detect_face(img)
    lm = face.landmarks
    assert lm.shape == (478, 3) and np.isfinite(lm).all()
    # Subject's right eye (mediapipe 33) is on the image's left; eyes above the mouth.
    assert lm[33, 0] < lm[263, 0]
    assert max(lm[33, 1], lm[263, 1]) < min(lm[61, 1], lm[291, 1])
    assert 100 < face.box[2] - face.box[0] < img.shape[1]
    # The irises (468..477) are inside the eye region.
    assert lm[468:, 1].min() > face.box[1] and lm[468:, 1].max() < lm[61, 1]


def test_multi_face_sorted_and_indexed(shared):
    img = read_image(_faces(shared) / "multi_face.jpg")
    faces = detect_faces(img)
    assert len(faces) == 5
    areas = [f.area for f in faces]
    assert areas == sorted(areas, reverse=True)
    assert detect_face(img).area == areas[0]
    assert detect_face(img, index=2).area == areas[2]
    assert detect_face(img, index=-1).area == areas[-1]
    with pytest.raises(CaptureError, match="out of range.*5 face"):
        detect_face(img, index=5)
    centres = np.array([f.landmarks[:, :2].mean(0) for f in faces])
    assert np.min(np.linalg.norm(centres[:, None] - centres[None], axis=-1) + np.eye(5) * 1e9) > 20  # 5 distinct


def test_no_face(shared):
    img = read_image(_faces(shared) / "free-mountain-vector-01.jpg")
    assert detect_faces(img) == []
    with pytest.raises(NoFaceError, match="no face found in mountain.jpg: use a photo"):
        detect_face(img, name="mountain.jpg")


def test_bad_image_shape_raises():
    with pytest.raises(ValueError, match=r"\[H, W, 3\] uint8"):
        detect_faces(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match=r"\[H, W, 3\] uint8"):
        detect_faces(np.zeros((10, 10, 3), np.float32))


def test_missing_mediapipe_names_the_extra(monkeypatch):
    import sys

    from avatar.capture import landmarks

    monkeypatch.setattr(landmarks, "_graphs", {})  # no cached graph: the import must run
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    with pytest.raises(ImportError, match=r"pip install 'avatar-engine\[capture\]'"):
        detect_faces(np.zeros((32, 32, 3), np.uint8))


def test_crop_face(shared):
    img = read_image(_faces(shared) / "grace_hopper.jpg")
    face = detect_face(img)
    crop, transform = crop_face(img, face, size=128, margin=0.5)
    assert crop.shape == (128, 128, 3) and crop.dtype == np.uint8 and transform.shape == (2, 3)
    mapped = face.landmarks[:, :2] @ transform[:, :2].T + transform[:, 2]
    # The landmarks' box fills the middle half of the crop (margin 0.5 on each side).
    span = mapped.max(0) - mapped.min(0)
    assert span.max() == pytest.approx(64, abs=0.5)
    assert np.allclose((mapped.max(0) + mapped.min(0)) / 2, 64, atol=0.5)
    # The crop shows the image content at the mapped position (nearest pixel check).
    for x, y in face.landmarks[[1, 33, 263], :2]:
        u, v = transform[:, :2] @ [x, y] + transform[:, 2]
        assert np.abs(crop[int(v), int(u)].astype(int) - img[int(y), int(x)].astype(int)).max() < 60
    # Landmarks found again in the crop agree with the mapped ones.
    again = detect_face(crop)
    inter_ocular = np.linalg.norm(mapped[33] - mapped[263])
    assert np.linalg.norm(again.landmarks[:, :2] - mapped, axis=1).mean() / inter_ocular < 0.05


# ---------------------------------------------------------------- video


@pytest.mark.parametrize("backend", ["ffmpeg", "opencv"])
def test_read_grid_clip(shared, backend):
    if backend == "ffmpeg":
        pytest.importorskip("imageio_ffmpeg", reason="imageio-ffmpeg is not installed")
    video = read_video(shared / "data" / "video" / "grid" / "bbaf2n.mpg", backend=backend)
    assert video.fps == pytest.approx(25.0)
    assert 70 <= len(video.frames) <= 80
    assert video.frames.shape[1:] == (288, 360, 3) and video.frames.dtype == np.uint8
    assert video.size == (360, 288)
    assert len(read_video(shared / "data" / "video" / "grid" / "bbaf2n.mpg", max_frames=5, backend=backend).frames) == 5


def test_backends_agree(shared):
    pytest.importorskip("imageio_ffmpeg", reason="imageio-ffmpeg is not installed")
    path = shared / "data" / "video" / "grid" / "bbaf2n.mpg"
    a = read_video(path, max_frames=3, backend="ffmpeg").frames.astype(int)
    b = read_video(path, max_frames=3, backend="opencv").frames.astype(int)
    assert np.abs(a - b).mean() < 3  # same frames, up to the decoders' colour conversion


@pytest.mark.parametrize("backend", ["ffmpeg", "opencv"])
def test_read_video_errors(tmp_path, backend):
    if backend == "ffmpeg":
        pytest.importorskip("imageio_ffmpeg", reason="imageio-ffmpeg is not installed")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_video(tmp_path / "missing.mp4", backend=backend)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(CaptureError, match="empty"):
        read_video(empty, backend=backend)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(CaptureError, match="re-export"):
        read_video(garbage, backend=backend)


def test_track_grid_clip(shared):
    video = read_video(shared / "data" / "video" / "grid" / "bbaf2n.mpg")
    track = track_landmarks(video)
    assert track.landmarks.shape == (len(video.frames), 478, 3) and track.landmarks.dtype == np.float32
    assert track.found.all() and track.bridged == []
    # Steady tracking: the eye corners move little from frame to frame.
    assert np.abs(np.diff(track.landmarks[:, [33, 263], :2], axis=0)).max() < 10
    # And they agree with single-photo detection on the same frame.
    still = detect_face(video.frames[10])
    assert np.linalg.norm(still.landmarks[33, :2] - track.landmarks[10, 33, :2]) < 5


def test_track_face_noface_clip(shared):
    video = read_video(shared / "data" / "video" / "face_noface.mov", max_frames=90)
    track = track_landmarks(video)
    assert track.found[:60].all() and not track.found[80:].any()
    assert len(track.bridged) == 1
    start, stop = track.bridged[0]
    assert 60 <= start < 80 and stop == len(video.frames)
    assert np.isfinite(track.landmarks).all()
    assert np.array_equal(track.landmarks[start:], np.broadcast_to(track.landmarks[start - 1], track.landmarks[start:].shape))

    # A face that leaves and comes back: the gap is interpolated between its two ends.
    frames = np.concatenate([video.frames[50:60], video.frames[85:90], video.frames[40:50]])
    track = track_landmarks(Video(frames=frames, fps=video.fps, size=video.size))
    assert track.bridged == [(10, 15)]
    lm = track.landmarks
    for t in range(10, 15):
        w = (t - 9) / 6
        assert np.allclose(lm[t], (1 - w) * lm[9] + w * lm[15], atol=1e-3)


def test_track_no_face_at_all(shared):
    video = read_video(shared / "data" / "video" / "face_noface.mov", max_frames=90)
    frames = video.frames[80:84]
    with pytest.raises(NoFaceError, match="no face found in any of the 4 frames"):
        track_landmarks(Video(frames=frames, fps=video.fps, size=video.size))


def test_track_reports_progress(shared, monkeypatch):
    import contextlib

    from avatar import progress as progress_module

    calls = []

    class Bar:
        def update(self, n=1):
            calls.append(n)

    @contextlib.contextmanager
    def reporter(total, desc):
        calls.append((total, desc))
        yield Bar()

    monkeypatch.setattr(progress_module, "_reporter", reporter)
    video = read_video(shared / "data" / "video" / "grid" / "bbaf2n.mpg", max_frames=4)
    track_landmarks(video)
    assert calls == [(4, "detecting landmarks"), 1, 1, 1, 1]


def test_missing_ranges_and_bridge():
    found = np.array([False, True, True, False, False, True, False])
    assert _missing_ranges(found) == [(0, 1), (3, 5), (6, 7)]
    lm = np.zeros((7, 478, 3), np.float32)
    lm[1], lm[2], lm[5] = 1.0, 2.0, 5.0
    _bridge(lm, found)
    assert np.allclose(lm[:, 0, 0], [1, 1, 2, 3, 4, 5, 5])
