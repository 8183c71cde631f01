"""Is a quad where the ink is? Contrast inside each line's quad against a band just outside it.

For each quad: the local background is the median gray of a thin band around the quad (other
quads' areas excluded, so a neighbouring line's ink is not taken for background); `inside` is the
mean absolute difference from that background over the quad, `band` the same over the band. Text
in its quad gives inside >> band; a quad that slid off its text gives inside ~ band. Used by the
tests and handy when adding a new page source.
"""

from __future__ import annotations

import cv2
import numpy as np


def line_contrast(image: np.ndarray, quads_px, band: int = 3) -> np.ndarray:
    """(N, 2) array of (inside, band) contrasts for N pixel quads (N, 4, 2) on an RGB image."""
    gray = cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2GRAY).astype(np.float32)
    h, w = gray.shape
    polys = [np.round(np.asarray(q, np.float64)).astype(np.int32) for q in quads_px]
    taken = np.zeros((h, w), np.uint8)
    for p in polys:
        cv2.fillPoly(taken, [p], 1)
    grow = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * band + 1, 2 * band + 1))
    out = np.zeros((len(polys), 2), np.float64)
    for i, p in enumerate(polys):
        inside = np.zeros((h, w), np.uint8)
        cv2.fillPoly(inside, [p], 1)
        ring = (cv2.dilate(inside, grow) > 0) & (cv2.dilate(taken, np.ones((3, 3), np.uint8)) == 0)
        if not ring.any() or not inside.any():
            out[i] = (np.nan, np.nan)
            continue
        bg = np.median(gray[ring])
        out[i] = (np.abs(gray[inside > 0] - bg).mean(), np.abs(gray[ring] - bg).mean())
    return out
