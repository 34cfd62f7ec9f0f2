"""Review tab bookkeeping without widgets: rounds and their folders, what a model file says, and the
map view cut out of the raster as a VRT."""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass

ROUND_FOLDER = re.compile(r"^round_(\d+)$")
MIN_VIEW_PX = 64          # a view narrower than this is widened around its centre (one tile at least)


@dataclass
class Round:
    """One round of the loop: its model and, for rounds trained here, what it was trained on."""
    number: int
    model: str                       # the .emd / .dlpk
    folder: str                      # the round's folder (views, chips, model)
    samples: int | None = None       # sample polygons at training time (None: trained elsewhere)
    pixels: float | None = None      # labelled pixels at training time
    miou: float | None = None
    metrics_on: str = ""             # "validation" or "training" chips
    trained_here: bool = False

    @property
    def model_folder(self) -> str:
        return os.path.dirname(self.model)


def default_work_folder(project_home: str = "") -> str:
    """A folder beside the saved project, else one in the temporary folder."""
    return os.path.join(project_home or tempfile.gettempdir(), "deep_pixel_rounds")


def round_folders(work: str) -> dict:
    """{round number: folder} of the round_NN folders in the working folder."""
    found = {}
    if os.path.isdir(work):
        for name in os.listdir(work):
            m = ROUND_FOLDER.match(name)
            if m and os.path.isdir(os.path.join(work, name)):
                found[int(m.group(1))] = os.path.join(work, name)
    return found


def round_folder(work: str, number: int) -> str:
    return os.path.join(work, f"round_{number:02d}")


def next_round_number(work: str, at_least: int = 1) -> int:
    """The first round number whose folder does not exist yet (earlier rounds are never reused)."""
    existing = round_folders(work)
    return max([at_least] + [n + 1 for n in existing])


def round_of_model(work: str, model: str) -> int | None:
    """The round number when ``model`` lies in round_NN/model of the working folder."""
    parent = os.path.dirname(os.path.dirname(os.path.abspath(model)))
    m = ROUND_FOLDER.match(os.path.basename(parent))
    if m and os.path.normcase(os.path.dirname(parent)) == os.path.normcase(os.path.abspath(work)):
        return int(m.group(1))
    return None


def latest_round_model(work: str) -> str | None:
    """The model of the highest round in the working folder that has one."""
    for _n, folder in sorted(round_folders(work).items(), reverse=True):
        model_dir = os.path.join(folder, "model")
        if os.path.isdir(model_dir):
            emd = sorted(f for f in os.listdir(model_dir) if f.lower().endswith(".emd"))
            if emd:
                return os.path.join(model_dir, emd[0])
    return None


def new_subfolder(parent: str, stem: str) -> str:
    """parent/stem_01, stem_02, ...: the first that does not exist, created."""
    n = 1
    while os.path.exists(os.path.join(parent, f"{stem}_{n:02d}")):
        n += 1
    path = os.path.join(parent, f"{stem}_{n:02d}")
    os.makedirs(path)
    return path


def model_info(path: str) -> dict:
    """What the model's .emd says (chip size, mIoU, metrics on): from the .emd or inside a .dlpk; {} when
    it is not a model definition."""
    try:
        if path.lower().endswith(".dlpk"):
            with zipfile.ZipFile(path) as z:
                name = next(n for n in z.namelist() if n.lower().endswith(".emd"))
                emd = json.loads(z.read(name).decode("utf-8"))
        else:
            with open(path, encoding="utf-8") as f:
                emd = json.load(f)
    except (OSError, ValueError, StopIteration, zipfile.BadZipFile):
        return {}
    if not isinstance(emd, dict) or not emd.get("Classes"):
        return {}
    miou = emd.get("mIoU")
    return {"chip": int(emd.get("ImageHeight") or 0), "miou": float(miou) if miou is not None else None,
            "metrics_on": emd.get("MetricsOn", ""), "classes": emd.get("Classes") or []}


def pixel_window(size, geotransform, rect) -> tuple:
    """(xoff, yoff, width, height) of the raster's pixels covering ``rect`` (xmin, ymin, xmax, ymax in the
    raster's CRS), at least MIN_VIEW_PX wide and high where the raster allows. ValueError when the rect
    misses the raster or the raster is rotated."""
    width, height = size
    x0, dx, rx, y0, ry, dy = geotransform
    if rx or ry or dx <= 0 or dy >= 0:
        raise ValueError("rotated or south-up raster")
    xmin, ymin, xmax, ymax = rect
    c0 = max(0, math.floor((xmin - x0) / dx))
    c1 = min(width, math.ceil((xmax - x0) / dx))
    r0 = max(0, math.floor((ymax - y0) / dy))
    r1 = min(height, math.ceil((ymin - y0) / dy))
    if c1 <= c0 or r1 <= r0:
        raise ValueError("the map view does not show the raster")

    def widen(lo, hi, total):
        need = min(MIN_VIEW_PX, total) - (hi - lo)
        if need <= 0:
            return lo, hi
        lo = max(0, lo - need // 2)
        hi = min(total, lo + min(MIN_VIEW_PX, total))
        return hi - min(MIN_VIEW_PX, total), hi

    c0, c1 = widen(c0, c1, width)
    r0, r1 = widen(r0, r1, height)
    return c0, r0, c1 - c0, r1 - r0


def clip_view(raster: str, rect, vrt: str) -> tuple:
    """Write ``vrt``: the pixels of ``raster`` under ``rect`` (raster CRS). Returns (path, window);
    the whole raster's path (no VRT) when the view covers it all."""
    from osgeo import gdal
    ds = gdal.Open(raster)
    if ds is None:
        raise ValueError(f"GDAL cannot open {raster}")
    window = pixel_window((ds.RasterXSize, ds.RasterYSize), ds.GetGeoTransform(), rect)
    if window == (0, 0, ds.RasterXSize, ds.RasterYSize):
        return raster, window
    out = gdal.Translate(vrt, ds, format="VRT", srcWin=list(window))
    if out is None:
        raise ValueError(f"GDAL could not write {vrt}")
    del out     # closing writes the file
    return vrt, window


def export_parameters(raster: str, samples, field: str, chip: int, chips: str, schema: str | None) -> dict:
    """Export Training Data for a round: chips of the model's size, overlapping by half (more chips from
    few samples)."""
    chip = min(max(int(chip or 128), 32), 512)
    params = {"INPUT_RASTER": raster, "INPUT_SAMPLES": samples, "TILE_SIZE_X": chip, "TILE_SIZE_Y": chip,
              "STRIDE_X": chip // 2, "STRIDE_Y": chip // 2, "OUTPUT_FOLDER": chips}
    if field:
        params["CLASS_FIELD"] = field
    if schema:
        params["CLASS_SCHEMA"] = schema
    return params


def train_parameters(chips: str, model: str, epochs: int, learning_rate: float, steps: int, output: str) -> dict:
    """Train Model fine-tuning ``model``: a fixed learning rate (no range test) and a capped number of
    steps per epoch keep a round to minutes on a CPU."""
    return {"INPUT_TRAINING_DATA": chips, "PRETRAINED_MODEL": model, "MAX_EPOCHS": int(epochs),
            "LEARNING_RATE": float(learning_rate), "MODEL_ARGUMENTS": f"steps_per_epoch={int(steps)}",
            "OUTPUT_MODEL": output}
