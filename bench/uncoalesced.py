"""`python -m bench.uncoalesced serve ...`: `megilance serve` with uvicorn's own response cycle.

The baseline of `bench.workarounds` for the head-and-body coalescing: every protection of
`httpserver.bounded` stays, only a response's head and first body chunk leave in two writes, as uvicorn sends them.
"""

from __future__ import annotations

from httpserver.bounded import BoundedHttpToolsProtocol
from ops.cli import main

if __name__ == "__main__":
    BoundedHttpToolsProtocol.cycle_class = None
    main()
