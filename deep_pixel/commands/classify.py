"""``classify``: raster (or folder of rasters) + model package -> class raster (GeoTIFF)."""
from __future__ import annotations

from ..classify import classify
from ..classify_options import AUTO_PADDING, AUTO_PADDING_MULTIPLES, MAX_AUTO_TILE, MIN_AUTO_TILE, ClassifyOptions
from ..device import DEVICES_HELP
from ..runtime_choice import PRECISION_HELP, PRECISIONS, RUNTIME_HELP, RUNTIMES

HELP = "Classify Pixels: classify a raster with a model package (.emd or .dlpk)."


def add_arguments(p):
    d = ClassifyOptions()
    p.add_argument("--input-raster", required=True, help="a raster file, a VRT, or a folder of images")
    p.add_argument("--model-definition", required=True, help="the model's .emd or .dlpk")
    p.add_argument("--output-raster", required=True, help="output GeoTIFF (a folder for a folder input)")
    p.add_argument("--tile-size", type=int, default=d.tile_size, help=f"0: chosen per raster from {MIN_AUTO_TILE} to {MAX_AUTO_TILE} px (fewest pixels computed)")
    p.add_argument("--padding", type=int, default=d.padding, help=f"pixels blended at tile borders (default: the network's effective border, {AUTO_PADDING} px "
                   f"or {AUTO_PADDING_MULTIPLES} x its downsampling factor if larger)")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--no-predict-background", dest="predict_background", action="store_false",
                   default=d.predict_background, help="classes named background/other are not predicted")
    p.add_argument("--test-time-augmentation", action="store_true", default=d.test_time_augmentation,
                   help="average the 8 flips/rotations (8x slower, usually a little better)")
    p.add_argument("--mask-polygons", default=d.mask_polygons, help="vector file: classify only inside it")
    p.add_argument("--output-confidence", default=d.output_confidence,
                   help="optional GeoTIFF of the winning class probability")
    p.add_argument("--device", default=d.device, help=DEVICES_HELP)
    p.add_argument("--runtime", default=d.runtime, choices=RUNTIMES, help=RUNTIME_HELP)
    p.add_argument("--precision", default=d.precision, choices=PRECISIONS, help=PRECISION_HELP)


def run(args, progress):
    options = ClassifyOptions(tile_size=args.tile_size, padding=args.padding, batch_size=args.batch_size,
                              predict_background=args.predict_background,
                              test_time_augmentation=args.test_time_augmentation, device=args.device,
                              runtime=args.runtime, precision=args.precision,
                              mask_polygons=args.mask_polygons, output_confidence=args.output_confidence)
    r = classify(args.input_raster, args.model_definition, args.output_raster, options, progress)
    return {"output_raster": r.output_raster, "output_confidence": r.output_confidence, "outputs": r.outputs,
            "device": r.device, "tiles": r.tiles, "skipped_tiles": r.skipped_tiles, "seconds": round(r.seconds, 2),
            "class_values": r.class_values, "classes": r.classes, "tile_size": r.tile.tile, "padding": r.tile.padding,
            "runtime": r.runtime, "precision": r.precision, "overlap_factor": round(r.overlap_factor, 3)}
