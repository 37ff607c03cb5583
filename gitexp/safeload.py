"""Bounded JSON and YAML loading: what every reader of run data (a fetched run is untrusted) goes through.

json.loads recurses once per nesting level, and so does most code that walks the result; a
YAML document can name one node a billion times through aliases. These loaders refuse what
exceeds the bounds (docs/format.md, "Reading a run") with UnreadableRecord, a GitexpError, so
that one hostile or damaged run is skipped (or refused by name), never a crash of every command.
"""

from __future__ import annotations

import re
from typing import Any

from gitexp.errors import GitexpError

MAX_DEPTH = 64  # nesting levels of a JSON or YAML value: configs nest ~10 deep
MAX_BYTES = 64 << 20  # one record file, note or trailer value
MAX_LARGE_BYTES = 512 << 20  # files that grow with the data or the steps: manifests, steps.jsonl
MAX_MESSAGE_BYTES = 16 << 20  # one run commit's message
MAX_YAML_ALIASES = 100  # aliases (*name) in one YAML document
MAX_YAML_NODES = 100_000  # values in one YAML document, each alias counted as the size of what it names

_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


class UnreadableRecord(GitexpError):
    """Run data that is malformed or beyond the bounds: the run it belongs to is skipped or refused."""

    def __init__(self, what: str, reason: str, malformed: bool = False) -> None:
        super().__init__(f"cannot read {what}: {reason} (the run may be damaged or hostile)")
        self.what = what
        self.reason = reason
        self.malformed = malformed  # not JSON at all, rather than beyond the bounds


def too_deep(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether JSON text nests arrays and objects more than limit levels (brackets in strings ignored).

    Cheap: without more than limit brackets in all there is nothing to scan; else one
    regular-expression pass over the strings and brackets.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    depth = 0
    for token in _TOKEN.finditer(raw):
        c = token.group()
        if c in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif c in (b"]", b"}"):
            depth -= 1
    return False


def json_loads(raw: bytes | str, what: str, max_bytes: int = MAX_BYTES) -> Any:
    """The JSON value of raw, or UnreadableRecord naming what when it is malformed, too large or too deep."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if len(data) > max_bytes:
        raise UnreadableRecord(what, f"it is larger than {max_bytes >> 20} MiB")
    if too_deep(data):
        raise UnreadableRecord(what, f"it nests deeper than {MAX_DEPTH} levels")
    import json

    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:  # (UnicodeDecodeError and too-long integers are ValueErrors)
        raise UnreadableRecord(what, f"it is not valid JSON ({' '.join(str(exc).split())[:200]})", True) from exc


def json_object(raw: bytes | str, what: str, max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """json_loads of a file whose top level must be an object."""
    data = json_loads(raw, what, max_bytes)
    if not isinstance(data, dict):
        raise UnreadableRecord(what, "its top level is not a JSON object")
    return data


def yaml_loads(text: str, what: str, max_bytes: int = MAX_BYTES) -> Any:
    """yaml.safe_load, bounded: at most MAX_DEPTH levels, MAX_YAML_ALIASES aliases and MAX_YAML_NODES
    values once aliases are expanded, no alias cycles. Raises yaml.YAMLError (as safe_load does)."""
    import yaml

    if len(text) > max_bytes:
        raise yaml.YAMLError(f"{what} is larger than {max_bytes >> 20} MiB")
    loader = _loader_class()(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


_LOADER: Any = None


def _loader_class() -> Any:
    """A yaml.SafeLoader that bounds depth, aliases and expanded size (built on first use: yaml is imported lazily)."""
    global _LOADER
    if _LOADER is not None:
        return _LOADER
    import yaml
    from yaml.events import AliasEvent

    class TooComplex(yaml.YAMLError):
        pass

    class BoundedLoader(yaml.SafeLoader):
        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.depth = 0
            self.aliases = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(AliasEvent):
                self.aliases += 1
                if self.aliases > MAX_YAML_ALIASES:
                    raise TooComplex(f"more than {MAX_YAML_ALIASES} aliases (*name)")
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH:
                    raise TooComplex(f"nested deeper than {MAX_DEPTH} levels")
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def get_single_node(self) -> Any:
            node = super().get_single_node()
            if node is not None and self.aliases:
                _check_expansion(node)
            return node

    def _check_expansion(root: Any) -> None:
        """Refuse an alias cycle, and a document whose aliases expand past MAX_YAML_NODES values or MAX_DEPTH levels."""
        size: dict[int, int] = {}
        height: dict[int, int] = {}
        on_path: set[int] = set()
        stack: list[tuple[Any, bool]] = [(root, False)]
        while stack:
            node, done = stack.pop()
            key = id(node)
            children = _children(node)
            if done:
                on_path.discard(key)
                size[key] = 1 + sum(size[id(c)] for c in children)
                height[key] = 1 + max((height[id(c)] for c in children), default=0)
                if size[key] > MAX_YAML_NODES:
                    raise TooComplex(f"its aliases expand to more than {MAX_YAML_NODES} values")
                if height[key] > MAX_DEPTH:
                    raise TooComplex(f"its aliases expand deeper than {MAX_DEPTH} levels")
                continue
            if key in size:
                continue
            if key in on_path:
                raise TooComplex("an alias refers to a node that contains it")
            on_path.add(key)
            stack.append((node, True))
            for child in children:
                if id(child) in on_path:
                    raise TooComplex("an alias refers to a node that contains it")
                if id(child) not in size:
                    stack.append((child, False))

    def _children(node: Any) -> list[Any]:
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        if isinstance(node, yaml.MappingNode):
            return [n for pair in node.value for n in pair]
        return []

    _LOADER = BoundedLoader
    return _LOADER
