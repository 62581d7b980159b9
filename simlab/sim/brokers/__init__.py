"""Virtual brokers: the ``BrokerApi`` port on the simulated clock, with latency, faults and an order/fill stream.

``profiles`` says how a broker behaves (``BrokerProfile``, the ready ``VIRTUAL`` and ``REAL``, and the
draws a call makes); ``orders`` holds what a broker records (its calls and its orders' schedules);
``virtual`` is the broker itself (``VirtualBroker``: how a call is served is in its docstring).
"""

from simlab.sim.brokers.orders import BrokerCall, BrokerOrder, split_quantity
from simlab.sim.brokers.profiles import PROFILES, REAL, VIRTUAL, BrokerProfile, Fault, draw_fault, draw_latency
from simlab.sim.brokers.virtual import VirtualBroker

__all__ = [
    "PROFILES",
    "REAL",
    "VIRTUAL",
    "BrokerCall",
    "BrokerOrder",
    "BrokerProfile",
    "Fault",
    "VirtualBroker",
    "draw_fault",
    "draw_latency",
    "split_quantity",
]
