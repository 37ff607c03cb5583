"""The docs are part of the product: the CLI reference is current and covers every command."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from gitexp import format as fmt
from gitexp.cli import COMMANDS

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_cli_reference_is_generated_from_the_current_help() -> None:
    spec = importlib.util.spec_from_file_location("generate_cli", DOCS / "generate_cli.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (DOCS / "cli.md").read_text() == module.render(), "docs/cli.md is stale: run python docs/generate_cli.py"
    for name in COMMANDS:
        assert f"## gitexp {name}\n" in (DOCS / "cli.md").read_text()


def test_format_spec_names_every_record_file_and_trailer() -> None:
    spec = (DOCS / "format.md").read_text()
    names = [v for k, v in vars(fmt).items() if (k.endswith("_FILE") or k.startswith("T_")) and isinstance(v, str)]
    assert names
    for name in names:
        assert f"`{name}`" in spec, f"docs/format.md does not document {name}"
    assert f"Format version: {fmt.FORMAT_VERSION}" in spec
