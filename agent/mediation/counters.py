"""Policy counters: what a version counts, per key and window, so a rule can limit it atomically.

A counter (``policy.counters`` of a version, see ``agent.spec.CounterSpec``) is kept in
Steward's own database as reservations: a call that matches it and is allowed reserves its share
in the same transaction as the decision, under a lock on the counter's key, so the next decision
on that key, on any worker, sees it. Rules read ``counters.<id>``: the count (or the sum) before
the call being decided.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import cel
import sqlalchemy as sa

from agent.mediation.policy import compile_expression
from agent.spec import CounterSpec
from storage.queries.limits import counter_totals

log = logging.getLogger(__name__)

_WINDOW = re.compile(r"^(?:(run|hour|day)|([1-9][0-9]{0,3})([mhd]))$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_KEY = 300


class CounterUnavailable(Exception):
    """A counter's key or amount cannot be computed for a call (a missing task field, say)."""


@dataclass(frozen=True)
class CounterShare:
    """What one call means for one counter: the key it counts under and what it adds."""

    counter: str
    key: str
    since: datetime
    amount: float


class CompiledCounter:
    """One ``CounterSpec`` with its ``per`` and ``sum`` expressions compiled."""

    def __init__(self, spec: CounterSpec) -> None:
        self.spec = spec
        what = f"counter {spec.id!r}"
        self.per = compile_expression(spec.per, what=f"{what} per") if spec.per else None
        self.sum = compile_expression(spec.sum, what=f"{what} sum") if spec.sum else None
        match = _WINDOW.match(spec.window)
        if match is None:
            raise ValueError(f"{what}: {spec.window!r} is not a window")
        self._period, count, unit = match.groups()
        self._rolling = timedelta(**{_UNITS[unit]: int(count)}) if unit else None

    def applies_to(self, tool: str) -> bool:
        return fnmatch.fnmatchcase(tool, self.spec.tool)

    def share(
        self,
        variables: Mapping[str, Any],
        *,
        agent_id: int,
        run_id: int,
        now: datetime,
        namespace: str | None = None,
    ) -> CounterShare:
        """The key and amount of a call seen through ``variables`` (``args``, ``task``,
        ``agent``). ``namespace`` keeps an evaluation's counts apart from production's.

        Raises:
            CounterUnavailable: ``per`` or ``sum`` cannot be evaluated for this call.
        """
        context = cel.Context(
            {k: variables[k] for k in ("args", "task", "agent") if k in variables}
        )
        per = _evaluate(self.per, context, self.spec.id, "per") if self.per else "*"
        amount = _evaluate(self.sum, context, self.spec.id, "sum") if self.sum else 1.0
        if isinstance(amount, bool) or not isinstance(amount, int | float):
            raise CounterUnavailable(f"counter {self.spec.id!r}: sum is not a number")
        scope = namespace or ("shared" if self.spec.shared else f"agent:{agent_id}")
        window = f"run:{run_id}" if self._period == "run" else self.spec.window
        key = f"{scope}|{self.spec.id}|{window}|{_render(per)}"
        if len(key) > _MAX_KEY:
            key = key[:200] + "#" + hashlib.sha256(key.encode()).hexdigest()
        return CounterShare(self.spec.id, key, self._since(now), float(amount))

    def _since(self, now: datetime) -> datetime:
        if self._rolling is not None:
            return now - self._rolling
        if self._period == "hour":
            return now.replace(minute=0, second=0, microsecond=0)
        if self._period == "day":
            return now.replace(hour=0, minute=0, second=0, microsecond=0)
        return _EPOCH  # a run's counter holds for the whole run: its key names the run


class CompiledCounters:
    """A version's counters, by id and by the tools they count."""

    def __init__(self, specs: Iterable[CounterSpec]) -> None:
        self.by_id = {spec.id: CompiledCounter(spec) for spec in specs}
        self._counting: dict[str, tuple[CompiledCounter, ...]] = {}

    def counting(self, tool: str) -> tuple[CompiledCounter, ...]:
        """The counters a call of ``tool`` adds to when it is executed."""
        found = self._counting.get(tool)
        if found is None:
            found = self._counting[tool] = tuple(
                c for c in self.by_id.values() if c.applies_to(tool)
            )
        return found

    def involved(self, tool: str, read: frozenset[str] | None) -> tuple[CompiledCounter, ...]:
        """Counters a decision on ``tool`` reads (``read``; None: all) or adds to."""
        names = set(self.by_id) if read is None else set(read) & set(self.by_id)
        names |= {c.spec.id for c in self.counting(tool)}
        return tuple(self.by_id[name] for name in sorted(names))

    def __bool__(self) -> bool:
        return bool(self.by_id)


def read_counters(
    connection: sa.Connection,
    counters: Iterable[CompiledCounter],
    variables: Mapping[str, Any],
    *,
    agent_id: int,
    run_id: int,
    now: datetime,
    namespace: str | None = None,
) -> dict[str, int | float]:
    """Each counter's value for this call (a count, or a sum when the counter sums), read on
    ``connection``. A counter that cannot be keyed for this call is left out, so every rule
    reading it fails safe."""
    values: dict[str, int | float] = {}
    for counter in counters:
        try:
            share = counter.share(
                variables, agent_id=agent_id, run_id=run_id, now=now, namespace=namespace
            )
        except CounterUnavailable as exc:
            log.warning("run %d: %s; rules reading it fail safe", run_id, exc)
            continue
        count, total = counter_totals(connection, share.key, share.since)
        values[counter.spec.id] = total if counter.sum is not None else count
    return values


def _evaluate(program: cel.Program, context: cel.Context, counter: str, part: str) -> Any:
    try:
        return program.execute(context)
    except Exception as exc:  # noqa: BLE001 - the CEL runtime raises several kinds
        raise CounterUnavailable(f"counter {counter!r}: {part} failed ({exc})") from None


def _render(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
