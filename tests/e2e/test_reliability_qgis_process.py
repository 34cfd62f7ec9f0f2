"""Issue 14 through qgis_process: outputs that would destroy an input are refused before any work."""
import os
import shutil

import numpy as np
import pytest
import rasterio
from affine import Affine
from conftest import run_qgis_process, snapshot
from gis_files import gdal_burn, write_raster, write_vector
from osgeo import ogr
from shapely.geometry import box


def _copy_landsat_shapefile(landsat, folder):
    stem = os.path.splitext(landsat["samples"])[0]
    for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg"):
        if os.path.exists(stem + ext):
            shutil.copy(stem + ext, folder / ("reference" + ext))
    shutil.copy(landsat["labels"], folder / "classes.tif")
    return str(folder / "classes.tif"), str(folder / "reference.shp")


def test_compute_accuracy_refuses_to_overwrite_its_inputs(landsat, tmp_path):
    classified, reference = _copy_landsat_shapefile(landsat, tmp_path)
    before = snapshot(tmp_path)
    for extra, culprit in ((f"OUTPUT_REPORT={classified}", "OUTPUT_REPORT"),
                           (f"OUTPUT_REPORT={tmp_path / 'r.html'} OUTPUT_TABLE={reference}", "OUTPUT_TABLE"),
                           (f"OUTPUT_REPORT={tmp_path / 'reference.json'}", "OUTPUT_REPORT")):
        proc = run_qgis_process("run", "deeppixel:computeaccuracy", "--", f"INPUT_CLASSIFIED={classified}",
                                f"REFERENCE={reference}", "CLASS_FIELD=class", *extra.split(" "), check=False)
        text = proc.stdout + proc.stderr
        assert proc.returncode != 0 and culprit in text and "Traceback" not in text, text
        after = snapshot(tmp_path)
        after.pop("classes.tif.aux.xml", None)   # QGIS's own statistics cache, written when it opens the layer
        assert after == before


def _export(tmp_path, raster, vector, *extra):
    return run_qgis_process("run", "deeppixel:exporttrainingdata", "--", f"INPUT_RASTER={raster}",
                            f"INPUT_SAMPLES={vector}", "CLASS_FIELD=cls", "TILE_SIZE_X=64", "TILE_SIZE_Y=64",
                            "STRIDE_X=64", "STRIDE_Y=64", f"OUTPUT_FOLDER={tmp_path / 'chips'}", *extra,
                            check=False)


def _case(name, tmp_path):
    """(raster, vector, expected words) of one bad input, written as real files."""
    data = np.random.default_rng(0).integers(1, 200, (3, 64, 64)).astype(np.uint16)
    polys = [box(1005, 1950, 1030, 1990), box(1035, 1950, 1060, 1990)]
    vector = write_vector(tmp_path / "s.gpkg", polys, [1, 2])
    if name == "non-integer class":
        vector = write_vector(tmp_path / "real.gpkg", polys, [1.0, 2.5], ogr.OFTReal)
        return write_raster(tmp_path / "r.tif", data), vector, "not whole: feature id(s) 2 (2.5)"
    if name == "no geotransform":
        return write_raster(tmp_path / "r.tif", data, transform=None), vector, "has no geotransform"
    if name == "all nodata":
        return write_raster(tmp_path / "r.tif", data * 0, nodata=0), vector, "holds only nodata"
    good = write_raster(tmp_path / "good.tif", data)
    (tmp_path / "r.tif").write_bytes(open(good, "rb").read()[:3000])
    os.remove(good)
    return str(tmp_path / "r.tif"), vector, "r.tif"


@pytest.mark.parametrize("name", ["non-integer class", "no geotransform", "all nodata", "truncated"])
def test_export_bad_inputs_are_clear_errors(tmp_path, name):
    raster, vector, words = _case(name, tmp_path)
    before = snapshot(tmp_path)
    proc = _export(tmp_path, raster, vector)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and words in text and "Traceback" not in text, text
    after = snapshot(tmp_path)
    after.pop("r.tif.aux.xml", None)          # QGIS's statistics cache for the layer it opened
    assert after == before


def test_export_on_a_rotated_grid_labels_what_gdal_burns(tmp_path):
    raster = write_raster(tmp_path / "rot.tif", np.ones((3, 64, 64), np.uint16),
                          transform=Affine(0.866, -0.5, 1000, -0.5, -0.866, 2000))
    vector = write_vector(tmp_path / "s.gpkg", [box(1010, 1960, 1030, 1990), box(990, 1945, 1010, 1965)], [1, 2])
    proc = _export(tmp_path, raster, vector)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with rasterio.open(tmp_path / "chips" / "labels" / "000000000.tif") as ds:
        assert np.array_equal(ds.read(1), gdal_burn(raster, vector))


def test_classify_confidence_over_the_class_raster_is_refused_first(scene, trained_scene_model, tmp_path):
    out = tmp_path / "classes.tif"
    proc = run_qgis_process("run", "deeppixel:classifypixels", "--", f"INPUT_RASTER={scene.image}",
                            f"MODEL_DEFINITION={trained_scene_model}", f"OUTPUT_RASTER={out}",
                            f"OUTPUT_CONFIDENCE={out}", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "OUTPUT_CONFIDENCE" in text and "would overwrite the output" in text, text
    assert os.listdir(tmp_path) == []


def test_compute_accuracy_refuses_a_float_classified_raster(tmp_path):
    classified = write_raster(tmp_path / "c.tif", np.full((1, 32, 32), 2.7, np.float32))
    reference = write_raster(tmp_path / "ref.tif", np.full((1, 32, 32), 2, np.uint8))
    proc = run_qgis_process("run", "deeppixel:computeaccuracy", "--", f"INPUT_CLASSIFIED={classified}",
                            f"REFERENCE_RASTER={reference}", f"OUTPUT_REPORT={tmp_path / 'r.html'}", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "holds float32 values" in text and "Traceback" not in text, text
    assert not os.path.exists(tmp_path / "r.html")
