"""The README and the docs pages: the settings table is the engine's, the two commands are those
.ci/run runs, every relative link and #anchor leads somewhere, and the README stays a short guide.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")
TWO_COMMANDS = (
    "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/charlstm-gui",
    "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest",
)


def settings_table():
    spec = importlib.util.spec_from_file_location(
        "settings_table", ROOT / "packaging" / "settings_table.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.M)}


def test_the_settings_tables_are_generated_from_the_config() -> None:
    module = settings_table()
    assert [t.page for t in module.TABLES] == [README, ROOT / "docs" / "command-line.md"]
    for t in module.TABLES:
        text = t.page.read_text(encoding="utf-8")
        assert module.block(t) in text, "run: python packaging/settings_table.py --write"
        assert module.replace_block(text, t) == text


def test_the_settings_tables_name_every_option_with_its_default_and_range() -> None:
    from charlstm_core.cli.options import default_text, range_text
    from charlstm_core.config import GenerationConfig, ModelConfig, TrainConfig, settings

    module = settings_table()
    expected = [(ModelConfig, TrainConfig), (GenerationConfig,)]
    for t, configs in zip(module.TABLES, expected, strict=True):
        assert t.configs == configs
        text = t.page.read_text(encoding="utf-8")
        block = text[text.index(t.begin) : text.index(t.end)]
        rows = {
            line.split(" | ")[1].strip("`"): line.split(" | ")
            for line in block.splitlines()
            if line.startswith("| ") and " | `--" in line
        }
        flags = set()
        for cls in configs:
            for name, (s, default) in settings(cls).items():
                if s.flag is None:
                    continue
                flag = s.flag or "--" + name.replace("_", "-")
                flags.add(flag)
                label, _, shown, values, _ = rows[flag]
                assert label == "| " + s.label and values == range_text(s)
                if default is None or default == "":
                    assert shown == default_text(s, default), flag
                else:
                    assert shown.strip("`").replace(",", "") == (
                        f"{default:g}" if isinstance(default, float) else str(default)
                    ), flag
        assert set(rows) == flags, t.page.name


def test_the_readme_gives_the_two_commands_ci_runs() -> None:
    text = README.read_text(encoding="utf-8")
    for command in TWO_COMMANDS:
        assert f"\n{command}\n" in text
    assert TWO_COMMANDS[1] in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_readme_stays_a_short_guide() -> None:
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 260


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_somewhere(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(target)
    assert not broken, f"{page.name}: {broken}"


SOURCE_PATH = re.compile(r"`((?:core|charlstm_gui|tests|packaging|benchmarks)/[\w/]+\.py)`")


@pytest.mark.parametrize("page", [README, ROOT / "docs" / "architecture.md"], ids=lambda p: p.name)
def test_the_files_named_as_owners_exist(page: Path) -> None:
    # "Who owns what" names files; a move or a rename must take the sentence with it.
    named = SOURCE_PATH.findall(page.read_text(encoding="utf-8"))
    assert named, "no source file named"
    assert [p for p in named if not (ROOT / p).is_file()] == []
