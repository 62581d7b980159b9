"""Test support for code built on ``sagas``: an asyncio event loop on virtual time.

It serves tests, not production: a service runs on ``sagas.runtime.AsyncioRuntime`` over a
real loop; a test runs the same code on ``VirtualTimeLoop`` and waits for nothing. Like the
runtime adapter, this package may import asyncio; nothing in ``sagas`` imports it.
"""

from sagas.testing.virtual_time import VirtualTimeLoop, run_virtual

__all__ = ["VirtualTimeLoop", "run_virtual"]
