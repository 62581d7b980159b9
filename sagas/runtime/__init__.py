"""The asyncio adapter: with ``sagas.testing``, the only part of ``sagas`` that imports asyncio.

The virtual-time loop that tests run it on lives in ``sagas.testing``.
"""

from sagas.runtime.asyncio_runtime import AsyncioRuntime

__all__ = ["AsyncioRuntime"]
