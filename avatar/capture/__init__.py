"""Capture stage: read photos and videos, detect faces and their 478 mediapipe landmarks.

- :mod:`avatar.capture.image` ``read_image`` (any PIL format, EXIF orientation applied).
- :mod:`avatar.capture.landmarks` ``detect_faces``, ``detect_face``, ``crop_face``.
- :mod:`avatar.capture.video` ``read_video``, ``iter_frames``, ``track_landmarks``.

Landmark detection needs the ``capture`` extra (``pip install 'avatar-engine[capture]'``);
reading images does not.
"""

from avatar.capture.errors import CaptureError, NoFaceError
from avatar.capture.image import read_image
from avatar.capture.landmarks import FaceDetection, crop_face, detect_face, detect_faces
from avatar.capture.video import Video, VideoLandmarks, iter_frames, read_video, track_landmarks

__all__ = [
    "CaptureError",
    "NoFaceError",
    "read_image",
    "FaceDetection",
    "detect_faces",
    "detect_face",
    "crop_face",
    "Video",
    "VideoLandmarks",
    "read_video",
    "iter_frames",
    "track_landmarks",
]
