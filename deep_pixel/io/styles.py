"""A QGIS layer style (``<raster>.qml``) for class rasters, written as plain XML (no QGIS needed).

QGIS reads ``<name>.qml`` beside a raster as its default style, so a classification opened later,
written by the command line or by ``qgis_process``, shows the model's colours and class names.
"""
from __future__ import annotations

import html
import os


_TAIL = """    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation saturation="0" grayscaleMode="0" invertColors="0" colorizeOn="0" colorizeRed="255" colorizeGreen="128" colorizeBlue="128" colorizeStrength="100"/>
    <rasterresampler maxOversampling="2"/>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
"""


def _qml(pipe: str) -> str:
    """A whole style document around ``pipe`` (the provider and renderer elements)."""
    return ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
            '<qgis version="3.22.0" styleCategories="AllStyleCategories">\n  <pipe>\n' + pipe + _TAIL)


def class_style_xml(classes) -> str:
    lines = []
    for c in classes:
        r, g, b = (int(v) for v in c["color"][:3])
        label = html.escape(f"{c['value']} {c['name']}", quote=True)
        lines.append(f'        <paletteEntry value="{int(c["value"])}" color="#{r:02x}{g:02x}{b:02x}" alpha="255" '
                     f'label="{label}"/>')
    entries = "\n".join(lines)
    return _qml(f"""    <provider>
      <resampling enabled="false" zoomedInResamplingMethod="nearestNeighbour" zoomedOutResamplingMethod="nearestNeighbour" maxOversampling="2"/>
    </provider>
    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">
      <colorPalette>
{entries}
      </colorPalette>
    </rasterrenderer>
""")


def style_path(raster_path: str) -> str:
    return os.path.splitext(raster_path)[0] + ".qml"


# Sure (dark) to unsure (bright): the "inferno" ramp's stops, readable on imagery and for colour-blind eyes.
RAMP_STOPS = ((0.0, "#000004"), (0.25, "#57106e"), (0.5, "#bc3754"), (0.75, "#f98e09"), (1.0, "#fcffa4"))


def ramp_style_xml(low_label: str = "sure", high_label: str = "unsure", stops=RAMP_STOPS) -> str:
    """A singleband pseudocolour style for a 0-1 float raster (e.g. uncertainty), interpolated between ``stops``."""
    items = []
    for value, color in stops:
        words = {stops[0][0]: f" {low_label}", stops[-1][0]: f" {high_label}"}.get(value, "")
        label = html.escape(f"{value:g}{words}", quote=True)
        items.append(f'          <item alpha="255" value="{value:g}" color="{color}" label="{label}"/>')
    entries = "\n".join(items)
    low, high = stops[0][0], stops[-1][0]
    return _qml(f"""    <rasterrenderer type="singlebandpseudocolor" band="1" opacity="1" alphaBand="-1" nodataColor="" classificationMin="{low:g}" classificationMax="{high:g}">
      <rasterTransparency/>
      <minMaxOrigin>
        <limits>None</limits>
        <extent>WholeRaster</extent>
        <statAccuracy>Estimated</statAccuracy>
        <cumulativeCutLower>0.02</cumulativeCutLower>
        <cumulativeCutUpper>0.98</cumulativeCutUpper>
        <stdDevFactor>2</stdDevFactor>
      </minMaxOrigin>
      <rastershader>
        <colorrampshader colorRampType="INTERPOLATED" classificationMode="1" clip="0" minimumValue="{low:g}" maximumValue="{high:g}" labelPrecision="2">
{entries}
        </colorrampshader>
      </rastershader>
    </rasterrenderer>
""")
