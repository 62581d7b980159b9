"""Runs, batches and sweeps: one seeded run, many of them in worker processes, and their tables.

Layer 5. ``runner`` simulates and judges one run; ``batches`` runs a batch into Parquet shards
(``shards``) and ``results`` loads them back, the one loader every number comes from;
``sweep`` runs a grid of settings; ``interrupts`` and ``progress`` keep long work honest
(Ctrl-C keeps what finished; progress shows runs done).

May import: ``simlab.chaos``, ``simlab.scenario``, ``simlab.evidence``, ``simlab.sim`` and ``sagas``.
"""
