"""Params: the files that hold them, -S overrides, and the effective params of a run."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitexp.errors import InvalidOverride, InvalidParamsFile

Override = tuple[tuple[str, ...], Any]


def parse_override(text: str) -> Override:
    """'model.depth=4' -> (('model', 'depth'), 4); the value is parsed as a YAML scalar."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep:
        raise InvalidOverride(text, "it has no '='")
    if not key:
        raise InvalidOverride(text, "the key is empty")
    parts = tuple(key.split("."))
    if any(not p.strip() for p in parts):
        raise InvalidOverride(text, f"the key {key!r} has an empty part")
    import yaml

    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise InvalidOverride(text, f"the value is not valid YAML ({' '.join(str(exc).split())})") from exc
    if isinstance(value, str) and value == raw.strip():
        value = _number(value)  # PyYAML reads 1e-3 as a string; an ML engineer means a float
    if isinstance(value, (list, dict)):
        raise InvalidOverride(text, "the value must be a single YAML scalar (number, string, true/false or null)")
    if not isinstance(value, (str, int, float, bool, type(None))):
        value = raw  # dates and other YAML types stay as the text given
    return parts, value


def _number(text: str) -> Any:
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


@dataclass(frozen=True)
class ParamsFile:
    path: str  # relative to the repository root, '/'-separated
    exists: bool
    original: bytes | None
    data: dict[str, Any]

    @property
    def is_json(self) -> bool:
        return self.path.endswith(".json")


def load_files(root: Path, paths: tuple[str, ...], required: bool) -> list[ParamsFile]:
    files = []
    for rel in paths:
        full = root / rel
        if not full.is_file():
            if required:
                raise InvalidParamsFile(rel, "it does not exist")
            files.append(ParamsFile(rel, False, None, {}))
            continue
        raw = full.read_bytes()
        files.append(ParamsFile(rel, True, raw, _parse(rel, raw)))
    return files


def _parse(rel: str, raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidParamsFile(rel, "it is not UTF-8 text") from exc
    if rel.endswith(".json"):
        try:
            data = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as exc:
            raise InvalidParamsFile(rel, f"invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidParamsFile(rel, f"invalid YAML ({' '.join(str(exc).split())})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidParamsFile(rel, "the top level must be a mapping of names to values")
    return _string_keys(data)


def _string_keys(data: dict[Any, Any]) -> dict[str, Any]:
    return {str(k): _string_keys(v) if isinstance(v, dict) else v for k, v in data.items()}


def merged(files: list[ParamsFile]) -> dict[str, Any]:
    """The effective params: every file's mapping deep-merged in order."""
    result: dict[str, Any] = {}
    for f in files:
        _deep_merge(result, f.data)
    return result


def apply_overrides(files: list[ParamsFile], overrides: list[Override]) -> dict[str, dict[str, Any]]:
    """New contents of the params files the overrides change, keyed by path.

    An override goes to the last file that defines its top-level key, else to
    the first file.
    """
    if not overrides:
        return {}
    changed: dict[str, dict[str, Any]] = {}
    for keys, value in overrides:
        target = next((f for f in reversed(files) if keys[0] in f.data), files[0])
        data = changed.setdefault(target.path, copy.deepcopy(target.data))
        node = data
        for i, part in enumerate(keys[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                dotted = ".".join(keys[: i + 1])
                raise InvalidOverride(".".join(keys) + "=" + str(value), f"{dotted} is a value, not a mapping")
            node = child
        node[keys[-1]] = value
    return changed


def serialize(path: str, data: dict[str, Any]) -> bytes:
    if path.endswith(".json"):
        return (json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8")
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode("utf-8")


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> dotted keys; lists and scalars are leaf values."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _deep_merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value
