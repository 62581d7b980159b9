"""What the trading sagas declare under a run's configuration, read once per process for equal ones.

The checks judge a run against the sagas' own definitions, never the trace's: each saga
type's steps (deadlines, compensations, retry policies; the scenario's step overrides
applied) and the policies of the polls its steps make (``declared_policies``). These are a
function of the saga classes and the run's ``SagaConfig`` alone, yet building them (every
saga's steps, each validated, twice) cost as much as a few of the checks together, and every
run of a batch built them anew from an equal configuration. ``saga_definitions`` keeps them.

What a reading is kept under (its key) says everything it is read from, so whatever ran before
in the process changes no run's answer:

- the configuration, as a hashable copy of every field that keeps each value's exact type
  (``1`` and ``1.0``, ``0.0`` and ``-0.0`` differ; ``config_key``), so runs share a reading
  only if their configurations are equal field by field and type by type;
- the code a reading runs through: the saga classes and every class they inherit from, the
  configuration's, step's and retry policy's classes (``apply_step_overrides``, the step's
  validation, ``RetryConfig.from_seed``), the modules that define them all and the wiring
  that lists the sagas. Every attribute and global those hold is compared by identity, so a
  test that patches a saga's method or a module's policy constant gets a reading of its own
  (which replaces the one kept before).

A configuration holding a value the copy cannot stand for is read afresh each time.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import operator
import sys
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from sagas.engine.errors import SagaDefinitionError
from sagas.engine.retry import RetryConfig
from sagas.engine.saga import BaseSaga
from sagas.engine.step import SagaStep
from sagas.trading.config import SagaConfig
from sagas.trading.wiring import definition_deps, saga_steps, trading_sagas


@dataclass(frozen=True, slots=True)
class StepPolicies:
    """What one step declares: the policies of its attempts, its compensation and its poll (if it polls)."""

    execute: RetryConfig
    compensate: RetryConfig
    poll: RetryConfig | None = None


def declared_policies(sagas: Iterable[BaseSaga]) -> dict[str, dict[str, StepPolicies]]:
    """``{saga_type: {step: StepPolicies}}`` from the sagas' definitions (overrides applied)."""
    declared: dict[str, dict[str, StepPolicies]] = {}
    for saga in sagas:
        polls = saga.poll_policies()
        declared[saga.get_saga_type()] = {
            step.name: StepPolicies(step.policy, step.compensation_policy, polls.get(step.name))
            for step in saga.validated_steps()
        }
    return declared


class SagaDefinitions:
    """The trading sagas' definitions under one configuration, each read when first asked for.

    Shared between the runs of equal configurations (``saga_definitions``), so read-only. A
    reading that raises (a definition the configuration breaks) raises again when asked again.
    """

    def __init__(self, config: SagaConfig) -> None:
        self._config = config

    @functools.cached_property
    def steps(self) -> Mapping[str, tuple[SagaStep, ...]]:
        """Each saga type's steps as the configuration defines them (overrides applied, not validated)."""
        config = self._config
        return MappingProxyType(
            {
                saga_type: tuple(config.apply_step_overrides(saga_type, defined))
                for saga_type, defined in saga_steps(config).items()
            }
        )

    @functools.cached_property
    def policies(self) -> Mapping[str, Mapping[str, StepPolicies]]:
        """``declared_policies`` of the trading sagas under the configuration (their steps validated)."""
        declared = declared_policies(trading_sagas(definition_deps(self._config)))
        return MappingProxyType({saga_type: MappingProxyType(by_step) for saga_type, by_step in declared.items()})


# -- keeping them -------------------------------------------------------------------------

_KEPT = 32
"""Readings kept: a sweep's points each have their configuration (the least recently used goes)."""

_ATOMS = (type(None), bool, int, str, bytes, type)
"""Values that stand for themselves in a key (with their exact type beside them)."""


class _NoKey(Exception):
    """A value ``config_key`` cannot copy faithfully."""


def _frozen(value: object) -> Hashable:
    """A hashable, type-exact copy of ``value`` (``_NoKey`` if it holds something it cannot copy)."""
    kind = type(value)
    if kind is float:
        return (float, repr(value))  # NOTE: repr tells -0.0 from 0.0, which compare (and hash) equal
    if isinstance(value, _ATOMS):
        return (kind, value)
    names = _FIELD_NAMES.get(kind)
    if names is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = _FIELD_NAMES[kind] = tuple(f.name for f in dataclasses.fields(value))
    if names is not None:
        return (kind, tuple((name, _frozen(getattr(value, name))) for name in names))
    if isinstance(value, Mapping):
        return (kind, tuple((_frozen(k), _frozen(v)) for k, v in value.items()))
    if isinstance(value, tuple | list):
        return (kind, tuple(_frozen(item) for item in value))
    raise _NoKey(kind.__name__)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
"""Each dataclass's field names, by class (a class's fields are fixed when it is made)."""


def config_key(config: SagaConfig) -> Hashable | None:
    """A key equal for two configurations exactly when they are equal field by field and type by type.

    None if a field holds a value it cannot copy so (an object of a kind it does not know).
    """
    try:
        return _frozen(config)
    except (_NoKey, RecursionError):
        return None


def _code_held(config: SagaConfig) -> tuple[object, ...]:
    """The classes a reading runs through, their attributes and their modules' globals, in a fixed order."""
    classes: list[type] = []
    for kind in (*(type(saga) for saga in trading_sagas(definition_deps(config))), type(config), SagaStep, RetryConfig):
        classes += [cls for cls in kind.__mro__ if cls is not object and cls not in classes]
    modules = list(dict.fromkeys([*(cls.__module__ for cls in classes), trading_sagas.__module__]))
    spaces = [vars(cls) for cls in classes] + [vars(sys.modules[name]) for name in modules]
    return (*classes, *itertools.chain.from_iterable(space.values() for space in spaces))


_kept: OrderedDict[Hashable, tuple[tuple[object, ...], SagaDefinitions]] = OrderedDict()
"""Configuration key -> (the code it was read with, its definitions), least recently used first."""
_kept_lock = threading.Lock()  # a worker may run runs on several threads: the dict's order is shared


def saga_definitions(config: SagaConfig) -> SagaDefinitions:
    """The definitions under ``config``, kept for the process under the configuration and the sagas' code.

    See the module docstring for what the key holds; a configuration ``config_key`` cannot copy is
    read afresh each time, and so is one whose definitions fail (each run that asks fails as before).
    """
    key = config_key(config)
    if key is None:
        return SagaDefinitions(config)
    code = _code_held(config)
    with _kept_lock:
        kept = _kept.get(key)
        # NOTE: the code is compared object by object, by identity: a patched attribute or global is another object.
        if kept is not None and len(kept[0]) == len(code) and all(map(operator.is_, kept[0], code)):
            _kept.move_to_end(key)
            return kept[1]
    definitions = SagaDefinitions(config)
    try:
        _ = definitions.steps, definitions.policies  # read now: what is kept reads no configuration later
    except SagaDefinitionError:
        return definitions  # not kept: the reading that fails fails again for each run that asks for it
    with _kept_lock:
        _kept[key] = (code, definitions)
        _kept.move_to_end(key)
        if len(_kept) > _KEPT:
            _kept.popitem(last=False)
    return definitions
