"""The simulated world: the real engine on a simpy clock, and the trading platform it runs against.

Layer 1 of the lab (the bottom). It holds the simulated runtime (``runtime``), simulated Redis
on fakeredis (``clocked_redis``; a dead world's Redis is reset and lent to the next world by
``redis_spares``), the world a run builds (``world``), and the trading domain
wired onto it: virtual brokers and their market (``brokers``, ``market``), latency draws
(``latency``), lagging read-model projections (``projections``) and ``trading_world``, which
puts them together. ``sample`` is a small non-trading saga for ``simlab sample``.

May import: ``sagas`` and third-party libraries. Nothing else of ``simlab``.
"""
