"""Files in and out: raster windows and band statistics, vector files, staged (atomic) outputs,
tiled GeoTIFF writing, QGIS styles (.qml), small PNG pictures and synthetic demo scenes."""
