"""Saga Lab's simulation and chaos lab: the real saga engine on a simulated clock."""

from simlab.runtime import SimRuntime, SimTask
from simlab.world import SimWorld, build_world, simulate

__all__ = ["SimRuntime", "SimTask", "SimWorld", "build_world", "simulate"]
