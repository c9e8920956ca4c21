"""Measurements of the rotation on the local cloud; figures go to docs/, never into tests."""

import sys
from pathlib import Path

# `python -m benchmarks` (make bench) finds localcloud and benchmarks from the project root, its
# working directory; the product's code is in folders of its own, which pytest puts on its
# pythonpath and this puts on sys.path. Appended, so that nothing installed is hidden.
_PROJECT = Path(__file__).resolve().parents[1]
for _folder in ("functions/rotation_core", "functions/rotation_entry"):
    if str(_PROJECT / _folder) not in sys.path:
        sys.path.append(str(_PROJECT / _folder))
