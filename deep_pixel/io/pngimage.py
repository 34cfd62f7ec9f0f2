"""Small pictures without plotting libraries: PNG encoding, band stretch, class colouring."""
from __future__ import annotations

import base64
import struct
import zlib

import numpy as np


def encode_png(rgb: np.ndarray) -> bytes:
    """(h, w, 3) or (h, w) uint8 -> PNG bytes."""
    arr = np.ascontiguousarray(rgb, dtype=np.uint8)
    if arr.ndim == 2:
        color_type, arr3 = 0, arr[:, :, None]
    else:
        color_type, arr3 = 2, arr
    h, w, _ = arr3.shape
    raw = b"".join(b"\x00" + arr3[y].tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def stretch_rgb(data: np.ndarray, rgb_bands=(2, 1, 0), valid=None) -> np.ndarray:
    """(bands, h, w) any dtype -> (h, w, 3) uint8 with a 2-98 percentile stretch per band."""
    bands = [min(b, data.shape[0] - 1) for b in rgb_bands]
    out = np.zeros(data.shape[1:] + (3,), dtype=np.uint8)
    for i, b in enumerate(bands):
        band = data[b].astype(np.float64)
        finite = np.isfinite(band) & (valid if valid is not None else True)
        sample = band[finite]
        lo, hi = np.percentile(sample, (2, 98)) if sample.size else (0, 1)
        scaled = np.nan_to_num((band - lo) / max(hi - lo, 1e-9) * 255, nan=0.0, posinf=255.0, neginf=0.0)
        out[:, :, i] = np.clip(scaled, 0, 255).astype(np.uint8)
    return out


def colorize(classes: np.ndarray, schema, background=(0, 0, 0)) -> np.ndarray:
    """Class values -> (h, w, 3) with the schema colours; 0 and unknown values -> background."""
    lut = np.zeros((max(int(classes.max(initial=0)), max(schema.values, default=0)) + 1, 3), dtype=np.uint8)
    lut[:] = background
    for c in schema:
        lut[c.value] = c.color
    return lut[classes]


def side_by_side(images, gap: int = 4) -> np.ndarray:
    """Place (h, w, 3) pictures of equal height next to each other with a white gap."""
    h = max(i.shape[0] for i in images)
    parts = []
    for k, im in enumerate(images):
        if k:
            parts.append(np.full((h, gap, 3), 255, np.uint8))
        pad = np.full((h, im.shape[1], 3), 255, np.uint8)
        pad[: im.shape[0]] = im
        parts.append(pad)
    return np.concatenate(parts, axis=1)
