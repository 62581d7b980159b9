"""What a run recorded, and whether it was right.

Layer 2. It reads a run's trace and its world's final state: one reading of the trace
(``trace_tables``: its vocabulary and the run's saga, attempt, lane and span tables), the
evidence a run leaves for its invariants (``sources``), the invariant registry
(``invariants``) and the checks it names (``checks/``), the lock ledger that watches every
Redis lock command (``lock_ledger``), which engine paths a run reached (``reach``), and the probes
of the saga code: a run's recorder and the static catalogue (``probes``).

May import: ``simlab.sim`` and ``sagas``. Never the scenario, chaos, batch or presentation layers:
evidence judges a run whatever made it.
"""
