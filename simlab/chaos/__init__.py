"""What happens to the world during a run: the workload that drives it and the faults injected into it.

Layer 4. ``workload`` builds a scenario's world and drives its users (connects, disconnects,
reconnects, deletions, orders); ``faults`` plans fault windows from the run's seed and wraps the
world's ports to inject them.

May import: ``simlab.scenario``, ``simlab.evidence``, ``simlab.sim`` and ``sagas``.
"""
