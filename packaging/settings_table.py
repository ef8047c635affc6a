"""Write the README's settings table from the settings' own definitions (``charlstm_core.config``).

Each row is one setting that has a command-line option: the app's label, the option, the default,
the range or choices (``charlstm_core.cli.options.range_text``) and the help text the app shows as a
tooltip. The README holds the table between two marker lines; ``tests/test_readme.py`` checks that
it is what this script prints, so the README cannot drift from the engine.

    python packaging/settings_table.py           # print the table
    python packaging/settings_table.py --write   # put it into README.md between the markers
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from charlstm_core.cli.options import CONFIGS, options, range_text

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN = "<!-- settings table: written by packaging/settings_table.py; do not edit by hand -->"
END = "<!-- end of settings table -->"


def default_text(value: Any) -> str:
    """``512``, ``1,000``, ``0.008`` or ``cosine``: a default as the README shows it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"`{value}`"
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def table() -> str:
    """The markdown table, one row per setting with an option, in the configs' field order."""
    rows = [
        "| setting | option | default | range | what it does, and when to change it |",
        "| --- | --- | --- | --- | --- |",
    ]
    for cls in CONFIGS:
        for flag, s, default in options(cls).values():
            cells = [s.label, f"`{flag}`", default_text(default), range_text(s), s.help]
            rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"


def block() -> str:
    """The table with its marker lines, as it stands in the README."""
    return f"{BEGIN}\n{table()}{END}\n"


def replace_block(text: str) -> str:
    """``text`` (the README) with the part from BEGIN to END replaced by ``block()``."""
    start, end = text.index(BEGIN), text.index(END) + len(END) + 1
    return text[:start] + block() + text[end:]


def main(argv: list[str]) -> int:
    if argv == ["--write"]:
        README.write_text(replace_block(README.read_text(encoding="utf-8")), encoding="utf-8")
    elif not argv:
        sys.stdout.write(table())
    else:
        print(f"usage: {Path(__file__).name} [--write]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
