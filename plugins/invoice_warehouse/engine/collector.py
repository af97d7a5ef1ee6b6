"""Python's cyclic garbage collector, held back while a task allocates in bulk.

An extraction decodes every page into dicts, lists and Decimals, and dbt builds its graph and results
the same way: hundreds of thousands of container objects, almost none of them in a reference cycle, so
reference counting frees them. The collector does not know that. At its default thresholds it ran 1,640
times in one 100,000-invoice extraction, 12 of them full collections walking every object the imports
made (pyarrow, requests...), 0.8 to 1.0 s of that task's 7 to 9 s of CPU, all of it under the GIL the
extraction runs on.

:func:`bulk_allocation` freezes the objects that exist when it starts (the imports, the process's
state: a collection no longer walks them) and raises the first generation's threshold from 700 to
50,000 objects, so a collection runs after 50,000 more live containers rather than 700. Cyclic
garbage is still collected, just in larger, rarer batches: in that extraction none ran, and the task's
peak RSS did not move. On leaving, the thresholds are restored and the frozen objects are handed back
to the collector, so a long-lived process (``dag.test()``, a test session) frees them as before. A
process that froze objects itself (a server that freezes before it forks its workers) keeps them
frozen: the block then only raises the threshold, since ``gc.unfreeze`` cannot tell its objects from
ours.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: the first generation's threshold while a task allocates in bulk (Python's default is 700)
BULK_THRESHOLD = 50_000

_lock = threading.Lock()
_depth = 0
_saved: tuple[int, int, int] | None = None
_froze = False


@contextmanager
def bulk_allocation() -> Iterator[None]:
    """Hold the collector back for the block (re-entrant, and safe from several threads: the settings
    are the process's, so the first block in sets them and the last one out restores them)."""
    global _depth, _saved, _froze
    with _lock:
        if _depth == 0:
            _saved = gc.get_threshold()
            _froze = gc.get_freeze_count() == 0
            if _froze:
                gc.freeze()
            gc.set_threshold(BULK_THRESHOLD, _saved[1], _saved[2])
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                if _froze:
                    gc.unfreeze()
                _saved, _froze = None, False
