"""gitexp: Git-native experiment versioning for machine learning.

In a training script: `import gitexp`, then `gitexp.params()`, `gitexp.log({...}, step=...)`,
`gitexp.log_artifact(path)`, `gitexp.log_params(args)`, `gitexp.summary({...})`, or `with gitexp.start(...):` outside
`gitexp run`. They are loaded on first use, so `import gitexp` costs next to nothing.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["log", "log_artifact", "log_params", "params", "start", "summary"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from gitexp import tracking

        value = getattr(tracking, name)
        globals()[name] = value  # later calls skip this function
        return value
    raise AttributeError(f"module 'gitexp' has no attribute {name!r}")
