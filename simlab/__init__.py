"""Saga Lab's simulation and chaos lab: the real saga engine on a simulated clock.

The layers, bottom to top (each may import only those below it; ``tests/test_layers.py``
holds them): ``sim`` (the simulated world), ``evidence`` (what a run recorded and whether it was
right), ``scenario`` (the lab's input language), ``chaos`` (workload and faults), ``batch``
(runs, batches, sweeps and their tables), ``present`` (summaries, plots, timeline, report), and
the entry points on top: ``cli`` (``simlab``), ``lab`` (notebooks) and ``demo``.
See ``docs/architecture.md``.
"""

from simlab.sim.runtime import SimRuntime, SimTask
from simlab.sim.world import SimWorld, build_world, simulate

__all__ = ["SimRuntime", "SimTask", "SimWorld", "build_world", "simulate"]
