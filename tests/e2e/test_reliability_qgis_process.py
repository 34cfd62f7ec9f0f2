"""Issue 14 through qgis_process: outputs that would destroy an input are refused before any work."""
import os
import shutil

from conftest import run_qgis_process, snapshot


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
