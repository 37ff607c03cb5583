"""The one exception hierarchy of gitexp.

Core code raises these; the CLI turns them into a one-line message and an exit
code. Each message names the problem and, where there is one, the fix.
"""

from __future__ import annotations


class GitexpError(Exception):
    """Base of every error gitexp reports to the user."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotARepository(GitexpError):
    def __init__(self, path: str) -> None:
        super().__init__(
            f"not inside a git repository: {path} (run 'git init' first, or cd into your project)"
        )
        self.path = path


class BareRepository(GitexpError):
    def __init__(self, path: str) -> None:
        super().__init__(
            f"{path} is a bare repository: it has no workspace to run in (clone it, and run gitexp in the clone)"
        )
        self.path = path


class InvalidRunName(GitexpError):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(
            f"invalid run name {name!r}: {reason} "
            "(use letters, digits, '.', '_' and '-', starting with a letter or digit)"
        )
        self.name = name
        self.reason = reason


class InvalidTag(GitexpError):
    def __init__(self, tag: str, reason: str) -> None:
        super().__init__(
            f"invalid tag {tag!r}: {reason} (use letters, digits, '.', '_' and '-', starting with a letter or digit)"
        )
        self.tag = tag


class RunNameTaken(GitexpError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"a run named {name!r} already exists (choose another -n NAME, or omit -n for an automatic name)"
        )
        self.name = name


class RunNotFound(GitexpError):
    def __init__(self, spec: str, suggestions: list[str] | None = None) -> None:
        if suggestions:
            hint = f": did you mean {' or '.join(suggestions)}? (see 'gitexp list' for names)"
        else:
            hint = " (see 'gitexp list' for names; a commit id prefix needs 4+ characters)"
        super().__init__(f"no run matches {spec!r}{hint}")
        self.spec = spec
        self.suggestions = suggestions or []


class RunInProgress(GitexpError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"run {name!r} is still running (wait for it to end, or follow it with: gitexp logs -f {name})"
        )
        self.name = name


class AmbiguousRun(GitexpError):
    def __init__(self, spec: str, candidates: list[str]) -> None:
        shown = ", ".join(candidates[:5])
        super().__init__(f"{spec!r} matches several runs ({shown}); give more characters or the run name")
        self.spec = spec
        self.candidates = candidates


class InvalidOverride(GitexpError):
    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"invalid -S {text!r}: {reason} (expected -S key=value, e.g. -S lr=0.01 or -S model.depth=4)")
        self.text = text


class InvalidParamsFile(GitexpError):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot read params file {path}: {reason} (fix the file, or set 'params:' in .gitexp.yaml)")
        self.path = path


class InvalidConfig(GitexpError):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"invalid config {path}: {reason}")
        self.path = path


class ReservedPath(GitexpError):
    def __init__(self, path: str) -> None:
        super().__init__(
            f"the path {path!r} in your workspace is reserved for gitexp's run records "
            "(rename it, or add it to .gitignore)"
        )
        self.path = path


class CommandNotFound(GitexpError):
    exit_code = 127

    def __init__(self, command: str) -> None:
        super().__init__(f"command not found: {command!r} (check the spelling, or that it is on PATH); nothing was recorded")
        self.command = command


class CommandNotExecutable(GitexpError):
    exit_code = 126

    def __init__(self, command: str, reason: str) -> None:
        super().__init__(f"cannot execute {command!r}: {reason} (check its permissions, e.g. chmod +x); nothing was recorded")
        self.command = command


class UnsupportedFormat(GitexpError):
    def __init__(self, what: str, version: str) -> None:
        super().__init__(f"{what} was written with record format {version}, newer than this gitexp understands (upgrade gitexp)")


class StorageError(GitexpError):
    """A git operation failed in a way the user must know about."""
