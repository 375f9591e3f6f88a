"""The test suite must exercise the installed package, not the source tree."""
import importlib.resources
import pathlib

import helios


def test_imports_installed_package():
    assert "site-packages" in pathlib.Path(helios.__file__).parts


def test_grammar_shipped_as_package_data():
    assert importlib.resources.files("helios.grammar").joinpath("sql.lark").is_file()
