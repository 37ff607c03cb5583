"""gitexp: Git-native experiment versioning for machine learning.

In a training script: `import gitexp`, then `gitexp.params()`, `gitexp.log({...}, step=...)`,
`gitexp.log_artifact(path)`, `gitexp.log_params(args)`, `gitexp.summary({...})`, or `with gitexp.start(...):` outside
`gitexp run`. To read runs (a notebook): `gitexp.runs(where=..., sort=..., limit=...)`,
`gitexp.run("name")`, `gitexp.groups(by="config")` (gitexp.api; docs/api.md).
They are loaded on first use, so `import gitexp` costs next to nothing.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
_TRACKING = ("log", "log_artifact", "log_params", "params", "start", "summary")
_READING = ("groups", "run", "runs")
__all__ = [*_TRACKING, *_READING]


def __getattr__(name: str) -> Any:
    if name in _TRACKING:
        from gitexp import tracking

        value = getattr(tracking, name)
    elif name in _READING:
        from gitexp import api

        value = getattr(api, name)
    else:
        raise AttributeError(f"module 'gitexp' has no attribute {name!r}")
    globals()[name] = value  # later calls skip this function
    return value
