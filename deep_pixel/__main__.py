import sys

from .cli import main

if __name__ == "__main__":       # not when a worker process (Dask, DataLoader) re-imports the main module
    sys.exit(main())
