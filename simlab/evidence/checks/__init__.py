"""The invariants' checks, one concept per module, each judging a run against an independent source.

``endings`` (how sagas ended: by their deadline, compensating exactly what they touched;
the trace and the store), ``write_model`` (no data lost, no orphans, no duplicates,
disconnections and deletions done; the write model and the brokers' own accounts),
``locks`` (lock hygiene and a single lock holder; the simulated Redis, the lock ledger and
the write model), ``retry_policy`` (the trace against the sagas' declared step
definitions), ``triggers`` (one saga per trigger; the saga store) and ``steps`` (no step
applied twice; the trace, against the one re-run a crash allows). Every check takes the
run's ``simlab.evidence.sources.Evidence``; ``simlab.evidence.invariants`` registers them.
"""
