"""Overlapped I/O for Classify Pixels: the next tiles are read and the finished rows are written in
background threads while the network runs (GDAL releases the GIL while it reads, decompresses and
compresses). One thread each keeps reads and writes in order; errors surface in the caller's thread.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor


class Prefetcher:
    """Yields ``(key, read(key))`` for each key in order, reading up to ``depth`` keys ahead in a
    background thread."""

    def __init__(self, read, keys, depth: int = 1):
        self.read, self.keys, self.depth = read, list(keys), max(1, depth)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deep-pixel-read")

    def __iter__(self):
        pending = deque(self.pool.submit(self.read, k) for k in self.keys[:self.depth])
        for i, key in enumerate(self.keys):
            data = pending.popleft().result()
            if i + self.depth < len(self.keys):
                pending.append(self.pool.submit(self.read, self.keys[i + self.depth]))
            yield key, data

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)


class BackgroundWriter:
    """Runs ``write(item)`` in order in one background thread; at most ``depth`` items wait."""

    def __init__(self, write, depth: int = 2):
        self.write, self.depth = write, depth
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deep-pixel-write")
        self.pending = []

    def submit(self, item) -> None:
        self.pending.append(self.pool.submit(self.write, item))
        while len(self.pending) > self.depth:           # bounded memory; re-raises a writer error here
            self.pending.pop(0).result()
        self._raise_done()

    def _raise_done(self):
        while self.pending and self.pending[0].done():
            self.pending.pop(0).result()

    def drain(self) -> None:
        while self.pending:
            self.pending.pop(0).result()

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)
