"""Small utilities for the tests that start real processes."""
import socket
import time
from typing import Callable, Optional, TypeVar

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(probe: Callable[[], Optional[T]], timeout: float, interval: float = 0.2) -> T:
    """Call ``probe`` until it returns something other than None (or False); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing after {timeout} s")
        time.sleep(interval)
