"""Packaging for HeliosDB Nano (distribution ``heliosdb-nano``, import package ``helios``)."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "helios" / "__init__.py").read_text()).group(1)

setup(
    name="heliosdb-nano",
    version=VERSION,
    description="Embedded SQL database with git-like branches, time travel and a REST API",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    # twistd finds plugins only in an installed twisted/plugins: ship twisted_plugins/ there
    # (it has no __init__.py of its own; Twisted provides the package).
    packages=find_packages(include=["helios", "helios.*"]) + ["helios.grammar", "twisted.plugins"],
    package_dir={"helios.grammar": "grammar", "twisted.plugins": "twisted_plugins"},
    package_data={"helios.grammar": ["*.lark", "README.md"]},
    install_requires=[
        "twisted>=23.10",
        "klein>=23.5",
        "lark>=1.3,<2",        # the parser plugs a custom lexer into Lark 1.3's interface
        "pyjwt>=2.8",
        "zope.interface>=6.0",
        "immutables>=0.20",
        "msgpack>=1.0.7",
        "orjson>=3.9",
        "prometheus_client>=0.19",
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-twisted>=1.14", "hypothesis>=6.100", "pytest-timeout>=2.2",
                 "openapi-spec-validator>=0.7", "jsonschema>=4.18"],
        "fuzz": ["schemathesis>=4.32,<5"],
        "bench": ["doltlite", "sqlglot"],
    },
    entry_points={"console_scripts": ["helios = helios.cli:main"]},
    zip_safe=False,
)
