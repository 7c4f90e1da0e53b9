"""Shared test support: the checkout's root, fixed clocks, export rows and files, model frames.

- `tests.support.clocks`: the fixed instants tests run "as of" (never the wall clock) and `ts()`;
- `tests.support.events`: hand-built PostHog export rows and files (the generator makes bulk data);
- `tests.support.frames`: small model frames (PQL scores) for the delivery and report tests.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
