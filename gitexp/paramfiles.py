"""Params: the files that hold them, -S overrides, and the effective params of a run."""

from __future__ import annotations

import copy
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitexp.errors import GitexpError, InvalidOverride, InvalidParamsFile

if TYPE_CHECKING:
    from gitexp.trust import Trust

Override = tuple[tuple[str, ...], Any]


def parse_override(text: str) -> Override:
    """'model.depth=4' -> (('model', 'depth'), 4); the value is parsed as a YAML scalar. A leading '+' is dropped."""
    key, sep, raw = split_plus(text)[1].partition("=")
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
        value = yaml.safe_load(raw)
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
    path: str  # as configured: relative to the repository root, '/'-separated
    target: str | None  # the file really written (symlinks resolved), None when outside the repository
    original: bytes | None  # None when the file does not exist
    data: dict[Any, Any]  # as parsed: keys as the file gives them


@dataclass(frozen=True)
class Effective:
    params: dict[str, Any]  # the effective params, nested, string keys
    contents: dict[str, bytes]  # new bytes of the params files -S changes, by target path
    new_keys: tuple[str, ...]  # overridden keys no params file defined (typos?)


def load_files(
    root: Path, paths: tuple[str, ...], required: bool, instead: dict[str, bytes | None] | None = None,
    trust: Trust | None = None,
) -> list[ParamsFile]:
    """The params files; `instead` gives the bytes to read for some targets (None: as if absent).

    A file leading outside the work tree is read only where `trust` allows it (never without one),
    and one inside a git directory never.
    """
    from gitexp.trust import Trust

    files = []
    real_root = os.path.realpath(root)
    trust = trust or Trust.strict(root)
    for rel in paths:
        full = root / rel
        real = os.path.relpath(os.path.realpath(full), real_root)
        target = None if real == ".." or real.startswith(".." + os.sep) else real.replace(os.sep, "/")
        if instead and target in instead:
            raw = instead[target]
        else:
            trust.check(rel, "params file")
            if full.exists() and not full.is_file():
                raise InvalidParamsFile(
                    rel, "it is not a regular file (a directory? for a Hydra config directory, name its primary "
                    "config: params: [conf/config.yaml])"
                )
            raw = full.read_bytes() if full.is_file() else None
        if raw is None:
            if required:
                raise InvalidParamsFile(rel, "it does not exist")
            files.append(ParamsFile(rel, target, None, {}))
            continue
        files.append(ParamsFile(rel, target, raw, _parse(rel, raw)))
    return files


def _parse(rel: str, raw: bytes) -> dict[Any, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidParamsFile(rel, "it is not UTF-8 text") from exc
    from gitexp.safeload import UnreadableRecord, json_loads, yaml_loads

    if rel.endswith(".json"):
        try:
            data = json_loads(text, rel) if text.strip() else {}
        except UnreadableRecord as exc:
            cause = exc.__cause__
            why = f"invalid JSON at line {cause.lineno}: {cause.msg}" if isinstance(cause, json.JSONDecodeError) else exc.reason
            raise InvalidParamsFile(rel, why) from exc
    else:
        import yaml

        try:
            data = yaml_loads(text, rel)
        except yaml.YAMLError as exc:
            raise InvalidParamsFile(rel, f"invalid YAML ({' '.join(str(exc).split())})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidParamsFile(rel, "the top level must be a mapping of names to values")
    return data


def effective(files: list[ParamsFile], overrides: list[Override]) -> Effective:
    """Apply -S overrides to the params files' data; say which files change and how.

    An override goes to the last file that defines its top-level key, else to the
    first file. Keys match the file's own keys by their text (so `-S w.1=2`
    reaches a YAML integer key 1), and the file keeps its key types.
    """
    changed: dict[str, dict[Any, Any]] = {}
    new_keys: list[str] = []
    for keys, value in overrides:
        text = ".".join(keys) + "=" + str(value)
        if not files:
            raise InvalidOverride(text, "no params file is configured ('params:' in .gitexp.yaml is empty)")
        owner = next((f for f in reversed(files) if _key(f.data, keys[0]) in f.data), files[0])
        node = changed.setdefault(owner.path, copy.deepcopy(owner.data))
        *parents, leaf = keys
        for i, part in enumerate(parents):
            key = _key(node, part)
            if key not in node:
                node[key] = {}
            elif not isinstance(node[key], dict):
                raise InvalidOverride(text, f"{'.'.join(keys[: i + 1])} is a value, not a mapping")
            node = node[key]
        key = _key(node, leaf)
        if isinstance(node.get(key), dict) and node[key]:
            raise InvalidOverride(text, f"{'.'.join(keys)} is a mapping; override one of its keys instead")
        if key not in node:
            new_keys.append(".".join(keys))
        node[key] = value
    contents = {}
    for f in files:
        if f.path in changed:
            if f.target is None:
                raise InvalidOverride(
                    f.path, "it is a link to a file outside the repository, which -S will not rewrite"
                )
            contents[f.target] = serialize(f.path, changed[f.path])
    result: dict[Any, Any] = {}
    for f in files:
        _deep_merge(result, changed.get(f.path, f.data))
    return Effective(_string_keys(result), contents, tuple(dict.fromkeys(new_keys)))


def _key(node: dict[Any, Any], part: str) -> Any:
    """The key of node whose text is part (part itself when there is none)."""
    if part in node:
        return part
    return next((k for k in node if str(k) == part), part)


def _string_keys(data: dict[Any, Any]) -> dict[str, Any]:
    return {str(k): _string_keys(v) if isinstance(v, dict) else v for k, v in data.items()}


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


# -- params on the command line: `python main.py --lr {lr}` ------------------------------------------------

_FIELD = re.compile(r"\{\{|\}\}|\{([A-Za-z_][\w.-]*)\}")


def _templated(arg: str) -> bool:
    """An argument with whitespace in it is code (`python -c '...'`, `sh -c '...'`): never a template."""
    return not any(c.isspace() for c in arg)


def placeholders(argv: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The `{name}` placeholders of a command template, in order, once each (`{{` and `}}` are escapes).

    Only arguments without whitespace are templates: the braces of a script given as one argument
    (f-strings, dict literals) stay as they are.
    """
    found = [m.group(1) for arg in argv if _templated(arg) for m in _FIELD.finditer(arg) if m.group(1)]
    return tuple(dict.fromkeys(found))


def substitute(argv: list[str] | tuple[str, ...], flat: dict[str, Any]) -> list[str]:
    """The command with each `{name}` replaced by the param's value (as YAML writes a scalar, a string as it
    is) and `{{`/`}}` by a brace. A command without placeholders is returned as it is, braces and all."""
    if not placeholders(argv):
        return list(argv)
    missing = [name for name in placeholders(argv) if name not in flat]
    if missing:
        raise MissingPlaceholder(missing[0], sorted(flat))

    def value(m: re.Match[str]) -> str:
        if not m.group(1):
            return m.group(0)[0]
        v = flat[m.group(1)]
        return v if isinstance(v, str) else json.dumps(v)

    return [_FIELD.sub(value, arg) if _templated(arg) else arg for arg in argv]


def split_plus(text: str) -> tuple[bool, str]:
    """'+key=value' (Hydra's way of adding a key no params file defines) -> (True, 'key=value')."""
    stripped = text.lstrip()
    return (True, stripped[1:]) if stripped.startswith("+") else (False, text)


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{'a.b': 1} -> {'a': {'b': 1}}."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def closest(key: str, known: list[str]) -> str | None:
    """The known key most like key (a typo's intended key), if one is close."""
    import difflib

    near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if not near:  # a nested key typed without its parent: 'lr' for 'optim.lr'
        near = [k for k in known if k.rsplit(".", 1)[-1] == key.rsplit(".", 1)[-1]][:1]
    return near[0] if near else None


class UnknownParam(GitexpError):
    def __init__(self, key: str, known: list[str]) -> None:
        near = closest(key, known)
        hint = f"; did you mean {near}?" if near else ""
        super().__init__(
            f"-S {key}: no params file defines {key}{hint} (-S +{key}=VALUE adds it; a {{{key}}} in the command "
            "takes it as a command-line value)"
        )


class MissingPlaceholder(GitexpError):
    def __init__(self, name: str, known: list[str]) -> None:
        near = closest(name, known)
        hint = f" (did you mean {near}?)" if near else ""
        super().__init__(
            f"the command has {{{name}}} but no value for it: give one with -S {name}=VALUE or in a params file"
            f"{hint}; write {{{{ and }}}} for a literal brace"
        )
