"""Presenting finished results: summaries, analysis, plots, the run timeline and the HTML report.

Layer 6. Everything here reads results through ``simlab.batch.results`` (or one run's
``RunResult``) and changes no run: the batch code hash does not cover this package.

May import: every layer below (``simlab.batch``, ``simlab.chaos``, ``simlab.scenario``,
``simlab.evidence``, ``simlab.sim``) and ``sagas``.
"""
