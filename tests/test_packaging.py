"""What `pip install` puts into site-packages: only the distribution's own top-level names.

The folders keep the project's layout (core/, charlstm_gui/, resources/); pyproject's package-dir
installs them as charlstm_core and charlstm_gui.resources, so that no top-level `core` or
`resources` package is claimed (both are common names that other distributions use too).
"""

from __future__ import annotations

import importlib.metadata

from charlstm_gui import resources


def test_only_the_distributions_own_top_level_packages_are_installed():
    top = importlib.metadata.distribution("charlstm").read_text("top_level.txt")
    assert top is not None
    assert set(top.split()) == {"charlstm_core", "charlstm_gui"}


def test_the_resources_are_a_subpackage_of_the_app():
    assert resources.__name__ == "charlstm_gui.resources"
    assert resources.icon_path().read_text(encoding="utf-8").lstrip().startswith("<?xml")


def test_the_console_script_names_the_engine_package():
    (script,) = [
        e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == "charlstm"
    ]
    assert script.value.split(":")[0] == "charlstm_core.cli"
