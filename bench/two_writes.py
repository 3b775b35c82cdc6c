"""`python -m bench.two_writes serve ...`: `megilance serve` with uvicorn's own two writes per response (the head
when the app starts it, then the body), the public alternative `bench.workarounds` measures the shipped server
against. The shipped protocol holds a sized response's head and sends it with the body in one write
(`httpserver.bounded.CoalescingTransport`); every other protection of `httpserver.bounded` is the same here.
"""

from __future__ import annotations

import ops.cli
from httpserver.bounded import BoundedHttpToolsProtocol

if __name__ == "__main__":
    BoundedHttpToolsProtocol.COALESCE = False  # one worker: `serve` runs the server in this process
    ops.cli.main()
