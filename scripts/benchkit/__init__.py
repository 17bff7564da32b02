"""Pligt's benchmarks, as a package: ``python -P -m benchkit`` (Pligt beside nginx, run by
``scripts/bench``) and ``python -P -m benchkit.memory`` (memory while a large file goes up
and down, run by ``scripts/bench-memory``), with ``scripts`` on ``PYTHONPATH``.

- ``common``: the shared constants, the error, the log line and running a tool;
- ``dataset``: the files and the Pligt instances benchmarked;
- ``servers``: ``pligt init`` and ``pligt serve``, nginx, and a moto S3 server;
- ``rss``: the resident memory of a process tree, sampled through a transfer;
- ``measure``: wrk, slow clients, the wget harvest, curl uploads and downloads;
- ``patterns``: the deposit crawler's patterns as wrk Lua scripts (401, 401 then 200, 304),
  and copyparty beside Pligt and nginx;
- ``compare``: the run that measures Pligt beside nginx, step by step;
- ``report``: the table, the JSON and the medians of several runs;
- ``plot``: the ratios as a bar chart;
- ``profiling``: py-spy on the workers under load;
- ``memory``: the memory benchmark of ``scripts/bench-memory``.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: The repository: on the path for the helpers the tests share (``tests.support.net``).
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
