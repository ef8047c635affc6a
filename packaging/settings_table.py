"""Write the docs' settings tables from the settings' own definitions (``charlstm_core.config``).

Two tables: the training settings (``ModelConfig``, ``TrainConfig``: ``charlstm train`` and the
app's settings form) in the README, and the generation settings (``GenerationConfig``:
``charlstm sample`` and the app's Generate tab) in docs/command-line.md. Each row is one setting
that has a command-line option: the app's label, the option, the default, the range or choices
(``charlstm_core.cli.options.range_text``) and the help text the app shows as a tooltip. Each page
holds its table between two marker lines; ``tests/test_readme.py`` checks that it is what this
script prints, so the docs cannot drift from the engine.

    python packaging/settings_table.py           # print the tables
    python packaging/settings_table.py --write   # put them into their pages between the markers
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NamedTuple

from charlstm_core.cli.options import CONFIGS, options, range_text
from charlstm_core.cli.options import default_text as option_default
from charlstm_core.config import GenerationConfig, Setting

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BEGIN = "<!-- settings table: written by packaging/settings_table.py; do not edit by hand -->"
END = "<!-- end of settings table -->"


class Table(NamedTuple):
    """One generated table: the configs whose options it lists and where it stands."""

    page: Path
    configs: tuple[type, ...]
    begin: str
    end: str


TABLES = (
    Table(README, CONFIGS, BEGIN, END),
    Table(
        ROOT / "docs" / "command-line.md",
        (GenerationConfig,),
        "<!-- generation settings table: written by packaging/settings_table.py; do not edit by "
        "hand -->",
        "<!-- end of generation settings table -->",
    ),
)


def default_text(value: Any, s: Setting | None = None) -> str:
    """``512``, ``1,000``, ``0.008``, ``cosine`` or ``random``: a default as the docs show it."""
    if value is None or value == "":
        return option_default(s, value) if s is not None else "none"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"`{value}`"
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def table(configs: tuple[type, ...] = CONFIGS) -> str:
    """The markdown table, one row per setting with an option, in the configs' field order."""
    rows = [
        "| setting | option | default | range | what it does, and when to change it |",
        "| --- | --- | --- | --- | --- |",
    ]
    for cls in configs:
        for flag, s, default in options(cls).values():
            cells = [s.label, f"`{flag}`", default_text(default, s), range_text(s), s.help]
            rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"


def block(t: Table = TABLES[0]) -> str:
    """The table with its marker lines, as it stands in its page."""
    return f"{t.begin}\n{table(t.configs)}{t.end}\n"


def replace_block(text: str, t: Table = TABLES[0]) -> str:
    """``text`` (the page) with the part from its BEGIN to its END replaced by ``block(t)``."""
    start, end = text.index(t.begin), text.index(t.end) + len(t.end) + 1
    return text[:start] + block(t) + text[end:]


def main(argv: list[str]) -> int:
    if argv == ["--write"]:
        for t in TABLES:
            text = replace_block(t.page.read_text(encoding="utf-8"), t)
            t.page.write_text(text, encoding="utf-8")
    elif not argv:
        sys.stdout.write("\n".join(table(t.configs) for t in TABLES))
    else:
        print(f"usage: {Path(__file__).name} [--write]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
