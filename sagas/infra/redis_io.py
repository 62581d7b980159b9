"""Calling redis-py the same way whether the client is synchronous or asyncio."""

from __future__ import annotations

import inspect
from typing import Any


async def resolve(result: Any) -> Any:
    """``result`` itself, or what it yields if it is awaitable (asyncio clients)."""
    if inspect.isawaitable(result):
        return await result
    return result


def text(value: Any) -> str:
    """A Redis reply as ``str`` (replies are bytes unless the client decodes them)."""
    return value.decode() if isinstance(value, bytes) else str(value)
