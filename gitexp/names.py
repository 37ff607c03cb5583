"""Run names: validation and automatic, readable, unique names."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from gitexp.errors import InvalidRunName, InvalidTag

RESERVED = frozenset({"latest", "HEAD", "head"})
MAX_LENGTH = 100
_ALLOWED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_READABLE = re.compile(r"[A-Za-z0-9._-]{1,%d}" % MAX_LENGTH)

_ADJECTIVES = (
    "amber", "bold", "brave", "brisk", "calm", "clever", "cosmic", "crisp", "daring", "deep",
    "eager", "fancy", "fast", "fierce", "gentle", "glad", "golden", "grand", "happy", "hazy",
    "jolly", "keen", "kind", "lively", "lucky", "mellow", "merry", "mighty", "misty", "neat",
    "nimble", "noble", "proud", "quick", "quiet", "rapid", "rosy", "shiny", "silent", "sleek",
    "smart", "snowy", "solar", "steady", "sunny", "swift", "tidy", "vivid", "warm", "witty",
)
_NOUNS = (
    "otter", "falcon", "badger", "heron", "lynx", "panda", "tiger", "koala", "raven", "bison",
    "gecko", "eagle", "whale", "fox", "owl", "hare", "crane", "moose", "orca", "puma",
    "robin", "seal", "shark", "sloth", "swan", "wolf", "yak", "zebra", "bee", "cobra",
    "dingo", "egret", "ferret", "gibbon", "hippo", "ibis", "jackal", "kiwi", "lemur", "mole",
    "newt", "okapi", "quail", "rhino", "stork", "tapir", "viper", "walrus", "wombat", "finch",
)


def validate_tag(tag: str) -> str:
    """Tags follow the rules of run names (they may become ref or path parts too)."""
    try:
        return validate(tag, reserved=frozenset())
    except InvalidRunName as exc:
        raise InvalidTag(tag, exc.reason) from exc


def validate(name: str, reserved: frozenset[str] = RESERVED) -> str:
    """Return name if it is a valid run name, else raise InvalidRunName."""
    if not name:
        raise InvalidRunName(name, "it is empty")
    if len(name) > MAX_LENGTH:
        raise InvalidRunName(name, f"it is longer than {MAX_LENGTH} characters")
    if name in reserved:
        raise InvalidRunName(name, "it is reserved")
    if not _ALLOWED.fullmatch(name):
        bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in "._-"))})
        if bad:
            raise InvalidRunName(name, "it contains " + " ".join(repr(c) for c in bad))
        raise InvalidRunName(name, "it must start with a letter or a digit")
    if ".." in name:
        raise InvalidRunName(name, "it contains '..'")
    if name.endswith((".lock", ".")):
        raise InvalidRunName(name, "it ends with '.lock' or '.'")
    return name


def readable(name: str) -> bool:
    """Whether a ref refs/experiments/<name> that exists (fetched, made by hand) is read as a run.

    Its name must use the characters of run names, without '/' (no name is another's directory); the
    rules that keep new names easy to type (the first character, '..', reserved words) are not asked
    of it: `-rf` or `latest` is named `refs/experiments/-rf` or `-- -rf` on the command line.
    """
    return _READABLE.fullmatch(name) is not None


def generate(taken: Callable[[str], bool], prefix: str = "") -> str:
    """A fresh name like 'brisk-otter-3f9a', not taken locally.

    The 16 random bits of the suffix keep names from different machines apart:
    2,500 word pairs x 65,536 suffixes = 164 million names.
    """
    while True:
        a, n, suffix = os.urandom(1)[0] % len(_ADJECTIVES), os.urandom(1)[0] % len(_NOUNS), os.urandom(2).hex()
        name = f"{prefix}{_ADJECTIVES[a]}-{_NOUNS[n]}-{suffix}"
        if not taken(name):
            return name
