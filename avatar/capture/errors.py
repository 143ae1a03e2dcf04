"""Errors of the capture stage: every one says what was wrong and what to do."""

from __future__ import annotations


class CaptureError(ValueError):
    """An input photo or video that the capture stage cannot use."""


class NoFaceError(CaptureError):
    """No face was found in an image (or in any frame of a video)."""
