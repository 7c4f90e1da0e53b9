"""Regenerate the settings table of docs/configuration.md from the typed settings (their defaults
and the comment beside each field), so the reference can never drift from the code."""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
from pathlib import Path

from plg_bridge.config import Settings

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"


def comments(cls: type) -> dict[str, str]:
    found = {}
    for line in inspect.getsource(cls).splitlines():
        match = re.match(r"\s+(\w+): [^=]+=.*?#\s*(.+)$", line)
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


def rows() -> list[str]:
    out = ["| setting | environment variable | default | meaning |", "|---|---|---|---|"]
    defaults = Settings()
    top = comments(Settings)
    for section in dataclasses.fields(Settings):
        if section.metadata.get("internal"):
            continue
        value = getattr(defaults, section.name)
        if not dataclasses.is_dataclass(value):
            env = f"PLG_BRIDGE__{section.name.upper()}"
            note = top.get(section.name, "").replace("|", "/")
            out.append(f"| `{section.name}` | `{env}` | `{value}` | {note} |")
            continue
        notes = comments(type(value))
        doc = (inspect.getdoc(type(value)) or "").splitlines()[0] if inspect.getdoc(type(value)) else ""
        for f in dataclasses.fields(value):
            default = getattr(value, f.name)
            shown = ", ".join(default) if isinstance(default, tuple) else default
            env = f"PLG_BRIDGE__{section.name.upper()}__{f.name.upper()}"
            note = notes.get(f.name, doc if f.name == dataclasses.fields(value)[0].name else "")
            out.append(f"| `{section.name}.{f.name}` | `{env}` | `{shown}` | {note.replace('|', '/')} |")
    return out


def main() -> int:
    text = DOC.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(f"{head}{BEGIN}\n" + "\n".join(rows()) + f"\n{END}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
