"""Training samples: geometries with class values, burned into label windows.

The adapters (Processing, command line) hand the engine plain shapely geometries, the raw values
of the class field and the samples' CRS as WKT. This module maps text classes to values, reprojects
to the raster's CRS, buffers points, and rasterizes only the geometries that touch a window, so
memory does not grow with the raster.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import rasterio.errors
import rasterio.features
import rasterio.warp
from rasterio._err import CPLE_BaseError
from rasterio.crs import CRS
from shapely.geometry import box, mapping, shape

from ..core.errors import DeepPixelError
from ..core.schema import ClassInfo, ClassSchema

DEFAULT_CLASS_FIELDS = ("Classvalue", "ClassValue", "classvalue", "Value", "value",
                        "Classname", "ClassName", "classname", "class", "Class")


def pick_class_field(field_names, requested: str | None = None) -> str:
    """The class field to use: the requested one, else the first conventional name present."""
    names = list(field_names)
    if requested:
        if not names:
            raise DeepPixelError(f"The samples have no attribute field at all, so no class field {requested!r}: "
                                 "a shapefile whose .dbf is missing reads so. Copy the layer with all its files "
                                 "(.shp, .shx, .dbf, .prj), or save it as a GeoPackage.")
        if requested not in names:
            raise DeepPixelError(f"The samples have no field {requested!r}; fields are: {', '.join(names)}.")
        return requested
    for candidate in DEFAULT_CLASS_FIELDS:
        if candidate in names:
            return candidate
    raise DeepPixelError("No class field given and none of Classvalue, Value, Classname, class found "
                         f"among the fields ({', '.join(names)}). Name the class field explicitly.")


def _as_int(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return int(v)
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        return int(v.strip())
    return None


def _is_blank(v) -> bool:
    if isinstance(v, (float, np.floating)) and not np.isfinite(v):
        return True                      # a NULL read from a real-valued field
    return v is None or str(v).strip() == ""


def _check_whole_numbers(raw: list, feature_ids) -> None:
    """A real-valued class field must hold whole numbers: 2.5 is no class (not the text '2.5')."""
    bad = [i for i, v in enumerate(raw) if isinstance(v, (float, np.floating)) and not _is_blank(v)
           and not float(v).is_integer()]
    if bad:
        ids = [feature_ids[i] if feature_ids is not None else i for i in bad]
        shown = ", ".join(f"{fid} ({raw[i]:g})" for fid, i in list(zip(ids, bad))[:10])
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise DeepPixelError(f"The class field holds numbers that are not whole: feature id(s) {shown}{more}. "
                             "Class values must be integers: fix those features, or use a text field of "
                             "class names.")


def resolve_class_values(raw_values, schema: ClassSchema | None = None, feature_ids=None,
                         fix: str = "Add them to the schema or fix the samples.", known: str = "the class schema"):
    """Map raw class-field values to integer class values.

    Integers are used as they are (named from the schema when given). Text is looked up by class
    name in the schema, or, without a schema, numbered 1..n in sorted order. Returns
    ``(values, schema, mapping)`` where ``values[i]`` is None for an empty field, and ``mapping``
    maps text names to values when text was mapped (so it can be reported and written).
    """
    raw = [None if _is_blank(v) else v for v in raw_values]
    _check_whole_numbers(list(raw_values), feature_ids)
    present = [v for v in raw if v is not None]
    if not present:
        raise DeepPixelError("The samples have no class values: every feature's class field is empty.")
    as_ints = [_as_int(v) for v in present]
    if all(i is not None for i in as_ints):
        values = [_as_int(v) if v is not None and str(v).strip() != "" else None for v in raw]
        if schema is None:
            schema = ClassSchema.from_values(as_ints)
        else:
            unknown = sorted({v for v in as_ints if schema.by_value(v) is None})
            if unknown:
                raise DeepPixelError(f"Class values {unknown} are not in {known} "
                                     f"(values {schema.values}). {fix}")
            schema.validate()
        return values, schema, {}
    texts = [str(v).strip() for v in present]
    if schema is None:
        schema = ClassSchema.from_names(texts)
    unknown = sorted({t for t in texts if schema.by_name(t) is None})
    if unknown:
        raise DeepPixelError(f"Class names {unknown} are not in {known} "
                             f"({', '.join(c.name for c in schema)}). {fix}")
    mapping_ = {t: schema.by_name(t).value for t in sorted(set(texts))}
    values = [mapping_[str(v).strip()] if v is not None and str(v).strip() != "" else None for v in raw]
    return values, schema, mapping_


@dataclass
class Samples:
    """Geometries (shapely, in ``crs_wkt``) and their integer class values."""
    geometries: list
    values: list
    crs_wkt: str | None = None


class NoUsableFeatures(DeepPixelError):
    """The layer has no feature with both a geometry and a class value (callers word it for their input)."""


class LabelBurner:
    """Burns samples into label windows of one raster grid (one object owns the rasterization)."""

    def __init__(self, samples: Samples, raster_crs_wkt: str | None, buffer_radius: float = 0.0,
                 mask_geometries=None, mask_crs_wkt: str | None = None, what: str = "sample layer"):
        pairs = [(g, v) for g, v in zip(samples.geometries, samples.values)
                 if g is not None and not g.is_empty and v is not None]
        if not pairs:
            raise NoUsableFeatures("The sample layer has no usable features: every geometry is empty "
                                   "or has no class value.")
        self.skipped = len(samples.geometries) - len(pairs)      # no geometry, or no class value
        geoms = _to_crs([g for g, _ in pairs], samples.crs_wkt, raster_crs_wkt, what)
        fixed, self.repaired = [], 0
        for g in geoms:
            if g.geom_type in ("Point", "MultiPoint", "LineString", "MultiLineString") and buffer_radius > 0:
                g = g.buffer(buffer_radius)
            elif not g.is_valid:
                g, self.repaired = repair(g), self.repaired + 1
            fixed.append(g)
        self.geometries = fixed
        self.values = [int(v) for _, v in pairs]
        # Bounding boxes as an array: the candidate filter for a window (works with shapely 1.8
        # and 2.x alike; QGIS's Debian GEOS pairs with shapely 1.8 on bookworm).
        self._bounds = np.array([g.bounds for g in self.geometries], dtype=np.float64).reshape(-1, 4)
        self.mask = None
        if mask_geometries:
            mask = _to_crs([g for g in mask_geometries if g is not None and not g.is_empty],
                           mask_crs_wkt, raster_crs_wkt, "mask layer")
            from shapely.ops import unary_union
            self.mask = unary_union([m if m.is_valid else repair(m) for m in mask])

    @property
    def bounds(self):
        return _union_bounds(self.geometries)

    def candidates(self, bounds) -> list:
        """Indices of the geometries whose bounding box meets ``bounds``, in layer order."""
        b = self._bounds
        hit = (b[:, 0] <= bounds[2]) & (b[:, 2] >= bounds[0]) & (b[:, 1] <= bounds[3]) & (b[:, 3] >= bounds[1])
        return np.nonzero(hit)[0].tolist()

    def touches(self, bounds) -> bool:
        return len(self.candidates(bounds)) > 0

    def in_mask(self, bounds) -> bool:
        return self.mask is None or self.mask.intersects(box(*bounds))

    def burn(self, transform, shape_hw, bounds) -> np.ndarray:
        """uint8/uint16 labels (h, w): class value inside samples, 0 elsewhere.

        Pixels are labelled when their centre falls inside a polygon (GDAL's default rule);
        points and lines touch every pixel they cross. Later features win where samples overlap.
        """
        dtype = np.uint8 if max(self.values) <= 255 else np.uint16
        out = np.zeros(shape_hw, dtype=dtype)
        idx = self.candidates(bounds)
        areal = [(mapping(self.geometries[i]), self.values[i]) for i in idx
                 if self.geometries[i].geom_type in ("Polygon", "MultiPolygon", "GeometryCollection")]
        linear = [(mapping(self.geometries[i]), self.values[i]) for i in idx
                  if self.geometries[i].geom_type not in ("Polygon", "MultiPolygon", "GeometryCollection")]
        if areal:
            rasterio.features.rasterize(areal, out=out, transform=transform, dtype=dtype)
        if linear:
            rasterio.features.rasterize(linear, out=out, transform=transform, all_touched=True, dtype=dtype)
        if self.mask is not None:
            inside = rasterio.features.rasterize([(mapping(self.mask), 1)], out_shape=shape_hw,
                                                 transform=transform, dtype=np.uint8)
            out[inside == 0] = 0
        return out


def repair(geometry):
    """An invalid polygon made valid without losing parts (GEOS make_valid; buffer(0) drops one lobe
    of a self-intersecting 'bow tie'). Lines and points that the repair may add are dropped: a polygon
    labels areas."""
    from shapely.geometry import MultiPolygon
    from shapely.validation import make_valid
    valid = make_valid(geometry)
    if valid.geom_type in ("Polygon", "MultiPolygon"):
        return valid
    polygons = [p for g in getattr(valid, "geoms", [valid]) for p in getattr(g, "geoms", [g])
                if p.geom_type == "Polygon" and not p.is_empty]
    return MultiPolygon(polygons) if polygons else valid


def _union_bounds(geoms):
    b = np.array([g.bounds for g in geoms])
    return (b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max())


def _to_crs(geoms, src_wkt, dst_wkt, what: str = "sample layer"):
    """Geometries from the layer's CRS into the raster's; a CRS that does not fit the coordinates (missing,
    or a geographic CRS on projected coordinates) is named, with the fix, instead of GDAL's error."""
    if not src_wkt or not dst_wkt:
        return list(geoms)
    src, dst = CRS.from_wkt(src_wkt), CRS.from_wkt(dst_wkt)
    if src == dst:
        return list(geoms)
    try:
        out = [shape(rasterio.warp.transform_geom(src, dst, mapping(g))) for g in geoms]
    except (rasterio.errors.RasterioError, rasterio.errors.CRSError, CPLE_BaseError, ValueError) as e:
        out, why = None, str(e) or type(e).__name__
    else:
        why = "some coordinates become infinite"
    if out is not None and all(np.isfinite(g.bounds).all() for g in out if not g.is_empty):
        return out
    raise DeepPixelError(
        f"The {what}'s coordinates cannot be reprojected from its CRS ({_crs_name(src)}) to the raster's "
        f"({_crs_name(dst)}): {why}. The layer's CRS is probably missing or wrong for its coordinates. Set the "
        "CRS its coordinates are really in (Layer Properties > Source > Assigned Coordinate Reference System, "
        "then save it, or ogr2ogr -a_srs EPSG:<code>) and run again.")


def _crs_name(crs) -> str:
    epsg = crs.to_epsg()
    if epsg:
        return f"EPSG:{epsg}"
    wkt = crs.to_wkt()
    return wkt.split('"')[1] if '"' in wkt else wkt[:60]


NAME_FIELDS = ("classname", "class_name")


def schema_from_name_field(attributes: dict, class_field: str, values) -> ClassSchema | None:
    """Class names from a companion field (``Classname`` beside ``Classvalue``, as sample layers have).

    Used only when every class value has exactly one name and names are unique; otherwise None
    (the classes are then called "Class N").
    """
    name_field = next((f for f in attributes if f.lower() in NAME_FIELDS and f != class_field), None)
    if name_field is None:
        return None
    names = {}
    for v, n in zip(values, attributes[name_field]):
        if v is not None and n is not None and str(n).strip():
            names.setdefault(v, set()).add(str(n).strip())
    used = {v for v in values if v is not None}
    if set(names) != used or any(len(n) != 1 for n in names.values()):
        return None
    flat = [next(iter(n)) for n in names.values()]
    if len(set(flat)) != len(flat):
        return None
    base = ClassSchema.from_values(used)
    return ClassSchema([ClassInfo(c.value, next(iter(names[c.value])), c.color) for c in base.classes])
