"""A QGIS layer style (``<raster>.qml``) for class rasters, written as plain XML (no QGIS needed).

QGIS reads ``<name>.qml`` beside a raster as its default style, so a classification opened later,
written by the command line or by ``qgis_process``, shows the model's colours and class names.
"""
from __future__ import annotations

import html
import os


def class_style_xml(classes) -> str:
    lines = []
    for c in classes:
        r, g, b = (int(v) for v in c["color"][:3])
        label = html.escape(f"{c['value']} {c['name']}", quote=True)
        lines.append(f'        <paletteEntry value="{int(c["value"])}" color="#{r:02x}{g:02x}{b:02x}" alpha="255" '
                     f'label="{label}"/>')
    entries = "\n".join(lines)
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22.0" styleCategories="AllStyleCategories">
  <pipe>
    <provider>
      <resampling enabled="false" zoomedInResamplingMethod="nearestNeighbour" zoomedOutResamplingMethod="nearestNeighbour" maxOversampling="2"/>
    </provider>
    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">
      <colorPalette>
{entries}
      </colorPalette>
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation saturation="0" grayscaleMode="0" invertColors="0" colorizeOn="0" colorizeRed="255" colorizeGreen="128" colorizeBlue="128" colorizeStrength="100"/>
    <rasterresampler maxOversampling="2"/>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
"""


def style_path(raster_path: str) -> str:
    return os.path.splitext(raster_path)[0] + ".qml"
