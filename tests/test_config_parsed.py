"""What .gitexp.yaml parsed to is kept by file text, so commands that only read it skip the YAML parser."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from gitexp import config
from gitexp.errors import InvalidConfig


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    root, state = tmp_path / "ws", tmp_path / "state"
    root.mkdir()
    state.mkdir()
    return root, state


def test_a_config_read_twice_is_the_same_and_the_second_read_needs_no_yaml(dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    root, state = dirs
    (root / ".gitexp.yaml").write_text("data: [data/]\ndirection: {acc: higher}\nlarge_files: 5MB\n")
    first = config.load(root, state)
    assert json.loads((state / "config-parsed.json").read_text())["text"] == (root / ".gitexp.yaml").read_text()
    monkeypatch.setitem(sys.modules, "yaml", None)  # importing it now fails: the kept parse must be used
    assert config.load(root, state) == first
    assert first.data == ("data",) and first.direction == (("acc", "higher"),) and first.large_files == 5_000_000


def test_an_edited_config_is_parsed_again(dirs: tuple[Path, Path]) -> None:
    root, state = dirs
    (root / ".gitexp.yaml").write_text("data: [a]\n")
    assert config.load(root, state).data == ("a",)
    (root / ".gitexp.yaml").write_text("data: [b]\n")
    assert config.load(root, state).data == ("b",)


@pytest.mark.parametrize("kept", [b"garbage", b"", b'{"text": 1}', b"[]", b'{"text": "data: [a]\\n"}'])
def test_a_damaged_kept_parse_is_ignored(dirs: tuple[Path, Path], kept: bytes) -> None:
    root, state = dirs
    (root / ".gitexp.yaml").write_text("data: [b]\n")
    (state / "config-parsed.json").write_bytes(kept)
    assert config.load(root, state).data == ("b",)


def test_a_kept_parse_for_other_text_is_not_used(dirs: tuple[Path, Path]) -> None:
    root, state = dirs
    (state / "config-parsed.json").write_text(json.dumps({"text": "data: [b]\n", "data": {"data": ["evil"]}}))
    (root / ".gitexp.yaml").write_text("data: [b]\n# a comment\n")
    assert config.load(root, state).data == ("b",)


def test_what_json_cannot_give_back_is_not_kept(dirs: tuple[Path, Path]) -> None:
    root, state = dirs
    (root / ".gitexp.yaml").write_text("data: [a]\nwhen: 2026-01-01\n")  # a date: JSON has none
    assert config.load(root, state).data == ("a",)
    assert not (state / "config-parsed.json").exists()


def test_an_invalid_config_is_refused_whether_or_not_its_parse_was_kept(dirs: tuple[Path, Path]) -> None:
    root, state = dirs
    (root / ".gitexp.yaml").write_text("params: {a: 1}\n")
    for _ in range(2):
        with pytest.raises(InvalidConfig, match="list of paths"):
            config.load(root, state)
    (root / ".gitexp.yaml").write_text("a: [\n")
    with pytest.raises(InvalidConfig, match="not valid YAML"):
        config.load(root, state)


def test_an_unwritable_state_dir_only_costs_time(dirs: tuple[Path, Path]) -> None:
    root, state = dirs
    (root / ".gitexp.yaml").write_text("data: [a]\n")
    (state / "config-parsed.json").mkdir()  # cannot be replaced by a file
    assert config.load(root, state).data == ("a",)
    assert config.load(root, state / "missing").data == ("a",)
