# Deep Pixel: setup, tests, demo, benchmarks. Debian 12 with root for `make setup`.
SHELL := /bin/bash
SYSPY := /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := qgis python3-qgis qgis-providers python3-rasterio python3-gdal python3-shapely python3-venv xvfb xauth
export QT_QPA_PLATFORM := offscreen
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup system-packages test test-fast demo bench bench-quality screenshots install-plugin zip lint clean

setup: system-packages $(VENV)/.deps-stamp

# Installs the Debian packages only when something is missing (quick when already done).
system-packages:
	@if command -v qgis_process.bin >/dev/null && command -v Xvfb >/dev/null && \
	    $(SYSPY) -c "import qgis.core, rasterio, osgeo.ogr, shapely, venv, ensurepip" 2>/dev/null; then \
	  echo "Debian packages: present"; \
	else \
	  echo "Installing Debian packages: $(APT_PACKAGES)"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(APT_PACKAGES); \
	fi

$(VENV)/.deps-stamp: requirements.txt requirements-dev.txt
	@test -x $(PY) || $(SYSPY) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $@

test: setup
	$(PY) -m pytest tests -q -p no:cacheprovider

test-fast: setup
	$(PY) -m pytest tests/engine -q -p no:cacheprovider

demo: setup
	$(PY) scripts/demo.py

bench: setup
	$(PY) -m bench

bench-quality: setup
	$(PY) -m bench quality fewlabel

# Real QGIS desktop under Xvfb with the plugin, a raster and samples; PNGs land in docs/.
screenshots: setup
	$(PY) scripts/screenshots.py

install-plugin: setup
	$(SYSPY) scripts/install_plugin.py "$(CURDIR)" "$(CURDIR)/$(VENV)"

zip:
	$(SYSPY) scripts/build_zip.py

# ruff (style and bugs), Qt5-only idioms (QGIS 4 is Qt6), bandit (security, as the QGIS plugin repository runs it).
lint: setup
	$(PY) -m ruff check .
	$(PY) scripts/check_qt6.py
	$(PY) -m bandit -q -r deep_pixel processing_provider ui plugin.py __init__.py

clean:
	rm -rf .qgis .qgis-settings demo_output .pytest_cache dist build
