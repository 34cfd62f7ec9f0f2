"""Classify Pixels' uncertainty raster and Suggest Samples, on the synthetic scene with a model trained for real."""
import os
import re
import tempfile

import numpy as np
import pytest
import rasterio
from rasterio.features import rasterize
from shapely.geometry import box, mapping
from shapely.wkt import loads as load_wkt

from deep_pixel.classify.options import ClassifyOptions
from deep_pixel.classify.pipeline import PerPixel, StripRows
from deep_pixel.classify.run import classify
from deep_pixel.core.errors import DeepPixelError
from deep_pixel.io.synthetic import write_samples_gpkg
from deep_pixel.io.vector import read_vector
from deep_pixel.suggest.options import SuggestOptions
from deep_pixel.suggest.output import check_suggest_destinations, write_suggestions
from deep_pixel.suggest.run import suggest

HOLE = (slice(100, 150), slice(200, 260))           # a block of nodata pixels in the input


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(1), ds.nodata, ds.dtypes[0]


@pytest.fixture(scope="module")
def holed(scene, tmp_path_factory):
    """The scene with a block of nodata pixels (0 in every band, the scene's nodata)."""
    path = str(tmp_path_factory.mktemp("holed") / "holed.tif")
    with rasterio.open(scene.image) as src:
        data, profile = src.read(), src.profile
    data[:, HOLE[0], HOLE[1]] = 0
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


@pytest.fixture(scope="module")
def classified(holed, trained_scene_model, tmp_path_factory):
    """Classes, confidence, entropy and margin rasters of the holed scene (entropy and margin: two runs)."""
    out = tmp_path_factory.mktemp("classified")
    p = {k: str(out / f"{k}.tif") for k in ("classes", "confidence", "entropy", "margin_classes", "margin")}
    classify(holed, trained_scene_model, p["classes"], ClassifyOptions(
        device="cpu", output_confidence=p["confidence"], output_uncertainty=p["entropy"]))
    classify(holed, trained_scene_model, p["margin_classes"], ClassifyOptions(
        device="cpu", output_uncertainty=p["margin"], uncertainty_measure="margin"))
    return p


def test_uncertainty_is_0_to_1_and_nodata_where_the_classes_are(classified):
    classes, _, _ = read(classified["classes"])
    for name in ("entropy", "margin"):
        u, nodata, dtype = read(classified[name])
        assert dtype == "float32" and nodata == -1
        assert (u[classes == 0] == -1).all() and (classes[HOLE] == 0).all()
        inside = u[classes > 0]
        assert inside.size > 0.9 * u.size and inside.min() >= 0 and inside.max() <= 1
        assert inside.max() - inside.min() > 0.5, f"{name} barely varies"


def test_margin_and_entropy_agree_with_the_winning_probability(classified):
    """With p1 the confidence: 1 - p1 <= margin <= 2 (1 - p1); -ln(p1) / ln(K) <= entropy (min-entropy bound)."""
    classes, _, _ = read(classified["classes"])
    p1, _, _ = read(classified["confidence"])
    margin, _, _ = read(classified["margin"])
    entropy, _, _ = read(classified["entropy"])
    assert np.array_equal(classes, read(classified["margin_classes"])[0])    # the measure changes no class
    v = classes > 0
    p1, margin, entropy = p1[v].astype(np.float64), margin[v], entropy[v]
    assert (margin >= 1 - p1 - 1e-4).all() and (margin <= 2 * (1 - p1) + 1e-4).all()
    assert (entropy >= -np.log(p1) / np.log(5) - 1e-4).all()
    assert not np.allclose(margin, entropy, atol=0.05)


def test_uncertainty_is_higher_where_the_model_is_wrong(scene, classified):
    classes, _, _ = read(classified["classes"])
    truth, _, _ = read(scene.truth)
    u, _, _ = read(classified["entropy"])
    v = classes > 0
    wrong, right = u[v & (classes != truth)], u[v & (classes == truth)]
    assert wrong.size > 50 and wrong.mean() > right.mean() + 0.1, (wrong.mean(), right.mean())


def test_uncertainty_has_its_ramp_style_and_tags(classified):
    qml = open(os.path.splitext(classified["entropy"])[0] + ".qml", encoding="utf-8").read()
    assert 'type="singlebandpseudocolor"' in qml and 'colorRampType="INTERPOLATED"' in qml
    with rasterio.open(classified["margin"]) as ds:
        tags = ds.tags()
    assert tags["DEEP_PIXEL_UNCERTAINTY"] == "margin" and tags["DEEP_PIXEL_CLASS_RASTER"] == "margin_classes.tif"
    assert tags["DEEP_PIXEL_MODEL_CHIP_SIZE"] == "64"
    assert not [f for f in os.listdir(os.path.dirname(classified["entropy"])) if ".partial-" in f]


def test_entropy_and_margin_of_known_probabilities():
    """Blended sums (weight 2) of: uniform, certain, (0.5, 0.3, 0.2, 0, 0); background (class 4) excluded."""
    from deep_pixel.classify.blend import uncertainty
    probs = np.array([[0.2, 1, 0.5], [0.2, 0, 0.3], [0.2, 0, 0.2], [0.2, 0, 0], [0.2, 0, 0]], np.float32)[:, None] * 2
    weights = np.full((1, 3), 2, np.float32)
    entropy = -(0.5 * np.log(0.5) + 0.3 * np.log(0.3) + 0.2 * np.log(0.2)) / np.log(5)
    assert uncertainty(probs, weights, "entropy")[0] == pytest.approx([1, 0, entropy], abs=1e-5)
    assert uncertainty(probs, weights, "margin")[0] == pytest.approx([1, 0, 0.8], abs=1e-5)
    # Without class 4 the rest is renormalised: (0.25, 0.25, 0.25, 0.25) -> 1; margin of (0.5, 0.3, ...) unchanged.
    assert uncertainty(probs, weights, "entropy", excluded=[4])[0][0] == pytest.approx(1, abs=1e-5)
    assert uncertainty(probs, weights, "margin", excluded=[4])[0] == pytest.approx([1, 0, 0.8], abs=1e-5)
    assert uncertainty(probs, np.zeros_like(weights), "margin")[0] == pytest.approx([0, 0, 0])


def test_uncertainty_is_computed_only_when_asked():
    assert StripRows(0, 4, 8, [], False).uncertainty is None and StripRows(0, 4, 8, [], True).uncertainty is None
    assert StripRows(0, 4, 8, [], PerPixel(False, "entropy")).uncertainty.shape == (4, 8)


def test_uncertainty_clashes_are_refused_before_work(holed, trained_scene_model, tmp_path):
    out, conf = str(tmp_path / "c.tif"), str(tmp_path / "conf.tif")
    for bad, what in ((out, "output OUTPUT_RASTER"), (holed, "input INPUT_RASTER"), (conf, "output OUTPUT_CONFIDENCE")):
        with pytest.raises(DeepPixelError, match=f"OUTPUT_UNCERTAINTY .* would overwrite the {what}"):
            classify(holed, trained_scene_model, out, ClassifyOptions(device="cpu", output_uncertainty=bad,
                                                                      output_confidence=conf))
    with pytest.raises(DeepPixelError, match="must be a GeoTIFF"):
        classify(holed, trained_scene_model, out, ClassifyOptions(output_uncertainty=str(tmp_path / "u.png")))
    assert os.listdir(tmp_path) == []


def test_a_folder_gives_one_uncertainty_raster_per_image(scene, trained_scene_model, tmp_path):
    from rasterio.windows import Window
    (tmp_path / "in").mkdir()
    with rasterio.open(scene.image) as ds:
        profile = ds.profile.copy()
        profile.update(width=128, height=96, transform=ds.window_transform(Window(0, 0, 128, 96)))
        with rasterio.open(tmp_path / "in" / "north.tif", "w", **profile) as out:
            out.write(ds.read(window=Window(0, 0, 128, 96)))
    r = classify(str(tmp_path / "in"), trained_scene_model, str(tmp_path / "out"),
                 ClassifyOptions(device="cpu", output_uncertainty=str(tmp_path / "u.tif")))
    path = str(tmp_path / "out" / "north_uncertainty.tif")
    assert r.uncertainty_outputs == [path] and r.output_uncertainty == str(tmp_path / "out")
    assert read(path)[0].shape == (96, 128) and os.path.isfile(tmp_path / "out" / "north_uncertainty.qml")


# ---- Suggest Samples ---------------------------------------------------------------------------------------


def rect(s):
    """(row, col, size) of a suggestion, checked against its polygon."""
    return s.row, s.col, s.size


def apart(a, b) -> bool:
    """Neither overlapping nor touching, and spread: at least one window size between them in rows or columns."""
    (r1, c1, s1), (r2, c2, s2) = a, b
    return r2 >= r1 + 2 * s1 or r1 >= r2 + 2 * s2 or c2 >= c1 + 2 * s1 or c1 >= c2 + 2 * s2


def labelled_pixels(samples, shape, transform):
    vec = read_vector(samples)
    return rasterize([mapping(g) for g in vec.geometries], out_shape=shape, transform=transform,
                     all_touched=True) > 0


def test_suggestions_with_the_model(scene, trained_scene_model, tmp_path):
    opts = SuggestOptions(number_of_suggestions=8, seed=1, device="cpu")
    r = suggest(scene.image, trained_scene_model, input_samples=scene.samples, options=opts)
    assert len(r.suggestions) == 8 and r.window_size == 32            # the model's 64 px chips / 2
    assert [s.rank for s in r.suggestions] == list(range(1, 9))
    means = [s.mean_uncertainty for s in r.suggestions]
    assert means == sorted(means, reverse=True) and 0 < means[-1] <= means[0] <= 1
    with rasterio.open(scene.image) as ds:
        shape, transform = ds.shape, ds.transform
    labelled = labelled_pixels(scene.samples, shape, transform)
    names = {c.name for c in scene.schema.classes}
    for s in r.suggestions:
        row, col, size = rect(s)
        assert not labelled[row:row + size, col:col + size].any(), "a suggestion covers labelled pixels"
        poly = load_wkt(s.wkt)
        x0, y0 = transform * (col, row + size)
        assert poly.equals(box(x0, y0, x0 + size * transform.a, y0 + size * -transform.e))
        mix = re.findall(r"([\w-]+) (\d+)%", s.class_mix)
        assert mix and {n for n, _ in mix} <= names and 95 <= sum(int(p) for _, p in mix) <= 101, s.class_mix
    assert all(apart(rect(a), rect(b)) for i, a in enumerate(r.suggestions) for b in r.suggestions[i + 1:])
    assert not [f for f in os.listdir(tempfile.gettempdir()) if f.startswith("deep_pixel_suggest-")]


@pytest.fixture(scope="module")
def unc(classified):
    return classified["entropy"]


def test_the_first_suggestion_is_the_most_uncertain_eligible_window(holed, unc):
    r = suggest(holed, input_uncertainty=unc, options=SuggestOptions(number_of_suggestions=5, window_size=24))
    u, _, _ = read(unc)
    best = -1.0
    for row in range(0, u.shape[0] - 23, 6):                  # every window position on the 6 px grid of cells
        for col in range(0, u.shape[1] - 23, 6):
            w = u[row:row + 24, col:col + 24]
            if (w >= 0).sum() >= 0.5 * w.size:
                best = max(best, float(w[w >= 0].mean()))
    first = r.suggestions[0]
    w = u[first.row:first.row + 24, first.col:first.col + 24]
    assert first.mean_uncertainty == pytest.approx(w[w >= 0].mean(), abs=1e-5)
    assert first.mean_uncertainty == pytest.approx(best, abs=1e-5)
    assert re.search(r"[a-z]+ \d+%", first.class_mix)                # classes read from the raster beside it


def test_suggestions_stay_inside_the_mask_and_apart(holed, unc, tmp_path):
    with rasterio.open(holed) as ds:
        transform, crs = ds.transform, ds.crs.to_string()
    x0, y1 = transform * (40, 200)
    x1, y0 = transform * (300, 360)
    mask = str(tmp_path / "mask.gpkg")
    write_samples_gpkg(mask, [(box(x0, y0, x1, y1), 1)], crs)
    r = suggest(holed, input_uncertainty=unc, options=SuggestOptions(number_of_suggestions=100, window_size=20,
                                                                       mask_polygons=mask))
    assert 10 <= len(r.suggestions) < 100 and r.notes                 # the mask holds fewer: said so
    for s in r.suggestions:
        assert 200 <= s.row and s.row + s.size <= 360 and 40 <= s.col and s.col + s.size <= 300
    assert all(apart(rect(a), rect(b)) for i, a in enumerate(r.suggestions) for b in r.suggestions[i + 1:])


def test_equal_windows_are_picked_by_the_seed(holed, tmp_path):
    """A flat uncertainty: every window ties; a seed always picks the same ones, other seeds others."""
    flat = str(tmp_path / "flat.tif")
    with rasterio.open(holed) as ds:
        profile = ds.profile.copy()
    profile.update(count=1, dtype="float32", nodata=-1)
    with rasterio.open(flat, "w", **profile) as dst:
        dst.write(np.full((1, profile["height"], profile["width"]), 0.5, np.float32))

    def picks(seed):
        r = suggest(holed, input_uncertainty=flat, options=SuggestOptions(number_of_suggestions=6, window_size=16,
                                                                          seed=seed))
        return [rect(s) for s in r.suggestions]
    assert picks(3) == picks(3)
    assert len({tuple(picks(seed)) for seed in range(4)}) > 1
    assert all(s.class_mix == "" for s in suggest(holed, input_uncertainty=flat, options=SuggestOptions(
        window_size=16)).suggestions)                                # no class raster beside it: no mix


def test_the_geopackage_has_the_fields(holed, unc, scene, tmp_path):
    r = suggest(holed, input_uncertainty=unc, input_samples=scene.samples,
                options=SuggestOptions(number_of_suggestions=4, window_size=16))
    out = write_suggestions(r, str(tmp_path / "s.gpkg"))
    vec = read_vector(out)
    assert vec.attributes["rank"] == [1, 2, 3, 4] and vec.field_names == ["rank", "mean_uncertainty", "class_mix"]
    assert vec.attributes["mean_uncertainty"] == [s.mean_uncertainty for s in r.suggestions]
    assert all(g.geom_type == "Polygon" and g.area > 0 for g in vec.geometries) and "32633" in vec.crs_wkt


def test_suggest_errors_name_the_parameter(holed, unc, scene, trained_scene_model, tmp_path):
    with pytest.raises(DeepPixelError, match="MODEL_DEFINITION .* or INPUT_UNCERTAINTY"):
        suggest(holed)
    with pytest.raises(DeepPixelError, match="MODEL_DEFINITION .* or INPUT_UNCERTAINTY"):
        suggest(holed, trained_scene_model, unc)
    with pytest.raises(DeepPixelError, match="WINDOW_SIZE 500 px does not fit"):
        suggest(holed, input_uncertainty=unc, options=SuggestOptions(window_size=500))
    with pytest.raises(DeepPixelError, match="GeoPackage"):
        check_suggest_destinations(holed, None, unc, None, None, str(tmp_path / "s.shp"))
    with pytest.raises(DeepPixelError, match="OUTPUT .* would overwrite the input INPUT_SAMPLES"):
        check_suggest_destinations(holed, None, unc, scene.samples, None, scene.samples)
    with pytest.raises(DeepPixelError, match="NUMBER_OF_SUGGESTIONS 0 is below"):
        suggest(holed, input_uncertainty=unc, options=SuggestOptions(number_of_suggestions=0))


def test_the_command_line_writes_the_layer(holed, unc, tmp_path, capsys):
    from deep_pixel.cli.main import main
    out = str(tmp_path / "cli.gpkg")
    assert main(["suggest", "--input-raster", holed, "--input-uncertainty", unc, "--window-size", "16",
                 "--number-of-suggestions", "3", "--seed", "2", "--output", out]) == 0
    assert read_vector(out).attributes["rank"] == [1, 2, 3] and '"window_size": 16' in capsys.readouterr().out
