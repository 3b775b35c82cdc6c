"""Documents are encoded on a thread of lower CPU priority than the requests' (Linux: a thread has its own nice)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from api.matcher import ENCODING_NICE, lower_priority


def thread_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_the_encoding_thread_runs_at_a_lower_priority_and_the_others_keep_theirs() -> None:
    process_nice = os.getpriority(os.PRIO_PROCESS, 0)
    with ThreadPoolExecutor(1, initializer=lower_priority) as encoding, ThreadPoolExecutor(1) as plain:
        lowered = encoding.submit(thread_nice).result()
        other = plain.submit(thread_nice).result()
    assert lowered == min(19, process_nice + ENCODING_NICE)
    assert other == process_nice
    assert thread_nice() == process_nice
