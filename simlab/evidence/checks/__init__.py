"""Invariant checks that judge a run against an independent source, one concept per module.

``simlab.evidence.invariants`` is the registry every run goes through; the checks here are
the ones that need more than a few lines: the retry policy (the trace against the
sagas' declared step definitions), one saga per trigger (the saga store), lock
hygiene (the simulated Redis and the lock ledger) and no step applied twice (the
trace's execute records, against the one re-run a crash allows).
"""
