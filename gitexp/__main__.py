"""`python -m gitexp`: the same as the `gitexp` command."""

import os
import sys

# `python -m` puts the current directory first on sys.path; a user's tty.py or
# yaml.py there must not shadow the modules gitexp imports.
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from gitexp.cli import run_main

run_main()
