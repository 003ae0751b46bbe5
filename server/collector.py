"""The garbage collector of a serving process, tuned once at start for a server that holds many sockets.

With CPython's default thresholds (700, 10, 10) a process fanning events out to thousands of
sockets runs a young collection every few hundred frames; whatever lives a few milliseconds
(a frame waiting for its write, an event's envelope) survives into the old generation, which
fills quickly, and a full collection then walks every object of every connection. In the town
hall (5,000 members on two processes) those full collections paused each process for 200-390 ms
every few seconds: the loop writes nothing meanwhile, so they were a large part of the
ask-to-everyone p99, and a quarter of the server CPU per delivered frame.

A young collection every 50,000 net allocations lets short-lived objects die by reference
counting first, so little is promoted and full collections become rare; `gc.freeze()` moves
what the start-up built (modules, the app, its routes) out of every later collection. Cyclic
garbage is still collected, only in larger, rarer batches (tens of milliseconds each).
"""

from __future__ import annotations

import gc
import logging

YOUNG_THRESHOLD = 50_000
"""Net container allocations between young collections (CPython's default is 700)."""
OLDER_THRESHOLDS = (20, 20)
"""Young collections per middle one, middle ones per full one (CPython's default is 10, 10)."""

log = logging.getLogger("roomcast.server")


def raise_thresholds() -> None:
    """Young collections every `YOUNG_THRESHOLD` net allocations (also the load generator's client processes)."""
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)


def tune_collector() -> None:
    """Freeze what start-up built and raise the thresholds: called once per serving process, before it serves."""
    gc.collect()
    gc.freeze()
    raise_thresholds()
    log.info("server.gc_tuned", extra={"frozen": gc.get_freeze_count(), "thresholds": list(gc.get_threshold())})
