"""``make bench``: run every ``bench/bench_*.py`` but the few-label loop (or those named on the command line).

Each benchmark module has ``main()`` that prints its own table; numbers are reported as ratios
against a baseline measured in the same run, never as timed assertions.
"""
import importlib
import os
import sys


# Run by ``make bench-quality`` (``python -m bench quality fewlabel``) only: the few-label loop takes ~8.5 min,
# the three-scene quality bench ~30 min.
QUALITY_ONLY = ("bench_fewlabel",)


def main(argv):
    here = os.path.dirname(__file__)
    names = argv or sorted(f[:-3] for f in os.listdir(here) if f.startswith("bench_") and f.endswith(".py")
                           and f[:-3] not in QUALITY_ONLY)
    for name in names:
        name = name if name.startswith("bench_") else "bench_" + name
        print(f"\n=== {name} ===", flush=True)
        importlib.import_module(f"bench.{name}").main()


if __name__ == "__main__":
    main(sys.argv[1:])
