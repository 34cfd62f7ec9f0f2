"""Realistic synthetic scenes for the demo, tests and benchmarks (no external data needed).

A landscape of crop fields, forest, water (a river and lakes), roads and buildings, rendered as a
4-band (blue, green, red, near-infrared) uint16 reflectance image with per-field variation,
texture and sensor noise; training polygons digitised on the left part of the scene only, so the
rest is held out for accuracy; and the true class raster for checking.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.transform import from_origin

from ..core.schema import ClassInfo, ClassSchema

SCHEMA = ClassSchema([
    ClassInfo(1, "water", (30, 90, 200)), ClassInfo(2, "forest", (20, 110, 40)),
    ClassInfo(3, "cropland", (230, 200, 60)), ClassInfo(4, "grassland", (140, 210, 100)),
    ClassInfo(5, "built-up", (200, 40, 40)),
])
# Mean reflectance x 10000 per class: blue, green, red, nir.
SPECTRA = {1: (600, 700, 500, 300), 2: (300, 550, 350, 3200), 3: (700, 1000, 1200, 2600),
           4: (500, 900, 700, 3600), 5: (1400, 1500, 1600, 1900)}
UTM_33N = "EPSG:32633"


@dataclass
class Scene:
    image: str
    truth: str
    samples: str
    schema: ClassSchema
    train_fraction: float


def smooth_noise(rng, shape, scale: float) -> np.ndarray:
    """Gaussian-filtered white noise (FFT), normalised to zero mean and unit std."""
    h, w = shape
    noise = rng.standard_normal(shape)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    kernel = np.exp(-2 * (np.pi * scale) ** 2 * (fx ** 2 + fy ** 2))
    out = np.fft.irfft2(np.fft.rfft2(noise) * kernel, s=shape)
    return (out - out.mean()) / (out.std() + 1e-9)


def class_map(rng, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    # Fields: Voronoi cells, each cropland or grassland.
    n_cells = max(8, h * w // 4000)
    seeds = rng.uniform(0, [h, w], size=(n_cells, 2))
    cell = np.zeros((h, w), dtype=np.int32)
    best = np.full((h, w), np.inf)
    for i, (sy, sx) in enumerate(seeds):
        d = (yy - sy) ** 2 + (xx - sx) ** 2
        closer = d < best
        best[closer], cell[closer] = d[closer], i
    kinds = rng.choice([3, 4], size=n_cells, p=[0.6, 0.4])
    classes = kinds[cell].astype(np.uint8)
    forest = smooth_noise(rng, (h, w), max(h, w) / 20) > 0.6
    classes[forest] = 2
    # River: a sine band across the scene, plus lakes from low noise.
    centre = h * 0.55 + h * 0.12 * np.sin(xx / w * 2 * np.pi * 1.3 + rng.uniform(0, 6))
    classes[np.abs(yy - centre) < max(2, h / 80)] = 1
    classes[smooth_noise(rng, (h, w), max(h, w) / 25) < -1.9] = 1
    # Roads (built-up): straight lines; buildings: small blocks along them.
    for _ in range(max(2, w // 200)):
        x0 = int(rng.uniform(0.1, 0.9) * w)
        classes[:, max(0, x0 - 1):x0 + 2] = 5
        for _ in range(h // 40):
            by, bx = int(rng.uniform(0, h - 8)), x0 + int(rng.choice([-1, 1]) * rng.uniform(4, 14))
            classes[by:by + int(rng.uniform(4, 9)), max(0, bx):max(0, bx) + int(rng.uniform(4, 9))] = 5
    y0 = int(rng.uniform(0.2, 0.8) * h)
    classes[max(0, y0 - 1):y0 + 2, :] = 5
    return classes


def render(rng, classes: np.ndarray, cell_noise: bool = True) -> np.ndarray:
    h, w = classes.shape
    bands = np.zeros((4, h, w), dtype=np.float64)
    texture = smooth_noise(rng, (h, w), 1.5)
    broad = smooth_noise(rng, (h, w), max(h, w) / 10)
    for value, spectrum in SPECTRA.items():
        m = classes == value
        for b, mean in enumerate(spectrum):
            bands[b][m] = mean
    # Per-region brightness variation, fine texture and sensor noise.
    bands *= (1 + 0.12 * broad)[None]
    bands *= (1 + 0.06 * texture)[None]
    bands += rng.normal(0, 60, size=bands.shape)
    return np.clip(bands, 1, 10000).astype(np.uint16)


def sample_polygons(rng, classes: np.ndarray, transform, max_x_fraction: float, per_class: int = 12,
                    radius: int = 4):
    """Small square polygons placed in homogeneous areas of each class, left of max_x_fraction."""
    from shapely.geometry import box
    h, w = classes.shape
    out = []
    for value in SCHEMA.values:
        ys, xs = np.nonzero(classes[:, : int(w * max_x_fraction)] == value)
        order = rng.permutation(len(ys))
        placed = 0
        for k in order[: per_class * 40]:
            y, x = ys[k], xs[k]
            r = radius if value != 5 else 1
            win = classes[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1]
            if win.size < (2 * r + 1) ** 2 or np.any(win != value):
                continue
            x0, y0 = transform * (x - r, y - r)
            x1, y1 = transform * (x + r + 1, y + r + 1)
            out.append((box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), value))
            placed += 1
            if placed >= per_class:
                break
    return out


def write_samples_gpkg(path: str, polygons, crs: str, schema: ClassSchema = SCHEMA) -> None:
    from osgeo import ogr, osr
    ogr.UseExceptions()
    srs = osr.SpatialReference()
    srs.SetFromUserInput(crs)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    layer = ds.CreateLayer("samples", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("Classname", ogr.OFTString))
    layer.CreateField(ogr.FieldDefn("Classvalue", ogr.OFTInteger))
    for name in ("RED", "GREEN", "BLUE"):
        layer.CreateField(ogr.FieldDefn(name, ogr.OFTInteger))
    for geom, value in polygons:
        info = schema.by_value(value)
        f = ogr.Feature(layer.GetLayerDefn())
        f.SetField("Classname", info.name)
        f.SetField("Classvalue", int(value))
        for name, c in zip(("RED", "GREEN", "BLUE"), info.color):
            f.SetField(name, int(c))
        f.SetGeometry(ogr.CreateGeometryFromWkb(geom.wkb))
        layer.CreateFeature(f)
    ds = None


def make_scene(folder: str, width: int = 512, height: int = 512, seed: int = 0,
               train_fraction: float = 0.5, pixel_size: float = 10.0, per_class: int = 12) -> Scene:
    """Write ``scene.tif``, ``truth.tif`` and ``samples.gpkg`` into ``folder``."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    classes = class_map(rng, height, width)
    image = render(rng, classes)
    transform = from_origin(500000.0, 5600000.0, pixel_size, pixel_size)
    profile = dict(driver="GTiff", width=width, height=height, crs=UTM_33N, transform=transform,
                   tiled=True, blockxsize=256, blockysize=256, compress="deflate")
    paths = Scene(os.path.join(folder, "scene.tif"), os.path.join(folder, "truth.tif"),
                  os.path.join(folder, "samples.gpkg"), SCHEMA, train_fraction)
    with rasterio.open(paths.image, "w", count=4, dtype="uint16", nodata=0, **profile) as dst:
        dst.write(image)
        dst.descriptions = ("blue", "green", "red", "nir")
    with rasterio.open(paths.truth, "w", count=1, dtype="uint8", nodata=0, **profile) as dst:
        dst.write(classes[None])
    if os.path.exists(paths.samples):
        os.remove(paths.samples)
    polys = sample_polygons(rng, classes, transform, train_fraction, per_class)
    write_samples_gpkg(paths.samples, polys, UTM_33N)
    return paths
