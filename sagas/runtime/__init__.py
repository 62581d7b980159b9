"""The asyncio adapter: the only part of ``sagas`` that imports asyncio."""

from sagas.runtime.asyncio_runtime import AsyncioRuntime
from sagas.runtime.virtual_time import VirtualTimeLoop, run_virtual

__all__ = ["AsyncioRuntime", "VirtualTimeLoop", "run_virtual"]
