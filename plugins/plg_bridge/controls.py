"""On-call controls of one run: the same options as DAG params and as CLI flags.

Validated here once (with messages that say which option is wrong), so the UI, `airflow dags
trigger --conf` and `plg-bridge sync` behave identically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ControlError(ValueError):
    """An on-call option is invalid; the message names it."""


@dataclass(frozen=True)
class RunOptions:
    dry_run: bool = False  # plan only: write what would be sent, send nothing
    full_resync: bool = False  # send every record, changed or not (create-once objects still never twice)
    retry_dead_letters_only: bool = False  # send nothing but the rows that failed before
    orgs: tuple[str, ...] = ()  # only these organizations (empty: all)
    destinations: tuple[str, ...] = ()  # only these destinations or targets (empty: all enabled)

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> RunOptions:
        params = params or {}

        def flag(name: str) -> bool:
            value = params.get(name, False)
            if not isinstance(value, bool):
                raise ControlError(f"param {name} must be true or false, got {value!r}")
            return value

        def names(name: str) -> tuple[str, ...]:
            value = params.get(name) or []
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ControlError(f"param {name} must be a list of names, got {value!r}")
            return tuple(value)

        options = cls(
            dry_run=flag("dry_run"),
            full_resync=flag("full_resync"),
            retry_dead_letters_only=flag("retry_dead_letters_only"),
            orgs=names("orgs"),
            destinations=names("destinations"),
        )
        if options.full_resync and options.retry_dead_letters_only:
            raise ControlError("full_resync and retry_dead_letters_only exclude each other: choose one")
        return options
