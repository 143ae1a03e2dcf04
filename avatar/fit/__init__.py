"""Fitting a face model to images (the reconstruction front end; issue 4 in progress).

- :func:`fit_landmarks` identity, expression, head pose and focal length from the 478
  MediaPipe landmarks of one photo (the warm start of analysis-by-synthesis).
"""

from avatar.fit.landmark_fit import LandmarkFit, fit_landmarks, normalized_mean_error

__all__ = ["LandmarkFit", "fit_landmarks", "normalized_mean_error"]
