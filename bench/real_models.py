"""Small models trained for real on the three real scenes of ../shared/data (for the speed benches).

Each: Export Training Data with the engine's defaults, then Train Model with the CPU defaults for a
few epochs at a fixed learning rate (no range test; 25 to 45 s each on 2 cores), supervised only: semi-supervision (on by default) makes
a 4-epoch model less sure of itself, and agreement tests need decided pixels, not near-ties. Good enough to have confident, structured predictions,
which is what agreement and border measurements need; bench_quality measures accuracy properly.
"""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")
SCENES = {
    "landsat": (os.path.join(DATA, "landsat_tutorial", "LE70220491999322EDC01_stack.gtif"),
                os.path.join(DATA, "landsat_tutorial", "training_data.shp"),
                os.path.join(DATA, "landsat_tutorial", "LE70220491999322EDC01_stack.gtif")),
    "aerial": (os.path.join(DATA, "nb_aerial", "23322E759967N_clipped_1m_1of2.tif"),
               os.path.join(DATA, "nb_aerial", "training_polygons.gpkg"),
               os.path.join(DATA, "nb_aerial", "23322E759967N_clipped_1m_2of2.tif")),
    "sentinel2": (os.path.join(DATA, "aber_s2", "sen2_20210527_aber.tif"),
                  os.path.join(DATA, "aber_s2", "training_polygons.gpkg"),
                  os.path.join(DATA, "aber_s2", "sen2_20210527_aber.tif")),
}


def available() -> bool:
    return all(os.path.exists(p) for paths in SCENES.values() for p in paths)


def train_scene_model(name: str, folder: str, epochs: int = 4) -> tuple:
    """(emd path, raster to classify) for the scene ``name``: trained on its training raster."""
    from deep_pixel.core.schema import ClassSchema
    from deep_pixel.export.run import ExportOptions, export_training_data
    from deep_pixel.export.samples import Samples
    from deep_pixel.io.vector import read_vector
    from deep_pixel.train.loop import train_model
    from deep_pixel.train.options import TrainOptions
    train_raster, polygons, classify_raster = SCENES[name]
    vec = read_vector(polygons)
    field = "class" if "class" in vec.attributes else "Classvalue"
    values = vec.attributes[field]
    if field == "class":
        names = sorted(set(values))
        schema = ClassSchema.from_names(names)
        values = [names.index(v) + 1 for v in values]
    else:
        values = [int(v) for v in values]
        names = vec.attributes.get("Classname")
        schema = ClassSchema.from_records([{"Value": v, "Name": n} for v, n in sorted(set(zip(values, names)))]) \
            if names else None
    chips = os.path.join(folder, name + "_chips")
    chip = 64 if name == "landsat" else 256          # the Landsat scene is 250 px wide
    export_training_data(train_raster, Samples(vec.geometries, values, vec.crs_wkt), chips,
                         ExportOptions(tile_size_x=chip, tile_size_y=chip, stride_x=chip // 2, stride_y=chip // 2),
                         schema)
    result = train_model([chips], os.path.join(folder, name + "_model"),
                         TrainOptions(max_epochs=epochs, device="cpu", stop_when_not_improving=False, learning_rate=0.003,
                                      model_arguments={"semi_supervised": False}))
    return result.emd_path, classify_raster
