"""Crash injection for the reliability tests: ``crashpoint(name)`` kills this process with SIGKILL.

Set ``IWH_CRASH_AT=<name>`` (or ``<name>@<n>``: at its n-th passage) in a pipeline subprocess to die
exactly there: no ``finally``, no atexit, no flush, like a machine losing power or the OOM killer. The
named points sit where a crash would hurt most (tests/reliability/test_crash_recovery.py):

* ``extract.after_page``: a page is written, the partition (a `.tmp` Parquet file) half done;
* ``landing.before_manifest``: the data file is renamed into place, the manifest not yet written;
* ``load.between_delete_and_insert``: inside a raw table's merge transaction;
* ``publish.before_rename``: the published copy is written, not yet swapped in.

Unset (always, outside those tests) a crashpoint costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

_passages: dict[str, int] = {}


def crashpoint(name: str) -> None:
    """SIGKILL the current process if ``IWH_CRASH_AT`` names this point (and its passage count)."""
    want = os.environ.get("IWH_CRASH_AT")
    if not want:
        return
    point, _, nth = want.partition("@")
    if point != name:
        return
    _passages[name] = _passages.get(name, 0) + 1
    if _passages[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
