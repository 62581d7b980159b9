"""What a run recorded, and whether it was right.

Layer 2. It reads a run's trace and its world's final state: the invariants and their checks
(``invariants``, ``checks/``), the lock ledger that watches every Redis lock command
(``lock_ledger``), and which engine paths a run reached (``reach``).

May import: ``simlab.sim`` and ``sagas``. Never the scenario, chaos, batch or presentation layers:
evidence judges a run whatever made it.
"""
