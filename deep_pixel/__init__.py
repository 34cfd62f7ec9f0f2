"""Deep Pixel engine: deep-learning pixel classification without QGIS.

Use cases: ``export`` (training chips), ``train``, ``classify``, ``evaluate``, ``suggest`` (where to
label next). Import the modules you need; this package itself imports nothing heavy so that QGIS can
load the plugin without torch.
"""

__version__ = "0.1.0"
