"""Loading pygit2 without Python's ssl module and without libgit2 reading every CA certificate.

At import, pygit2 asks Python's `ssl` for the default certificate locations and hands
them to libgit2, whose OpenSSL then parses the whole CA bundle: 12 ms of the start-up
of every command that opens a repository (the `ssl` import about 7 ms, the bundle 5 ms),
for a libgit2 network transport gitexp never uses (git itself moves runs, with the
user's credentials). So, when neither is loaded yet, pygit2 is imported while `ssl`
stands for a module that gives only a certificate directory: OpenSSL registers it and
reads a certificate from it only if libgit2 ever verifies a server. `ssl` is then
removed again, and the real one loads as usual for whoever imports it later. Anything
unexpected (another pygit2 that asks `ssl` for more, a certificate directory refused)
and pygit2 is imported the ordinary way.
"""

from __future__ import annotations

import os
import sys
import types
from collections import namedtuple

_Paths = namedtuple(
    "_Paths", "cafile capath openssl_cafile_env openssl_cafile openssl_capath_env openssl_capath"
)


def certificate_dir() -> str:
    """Where OpenSSL looks for CA certificates by hash: $SSL_CERT_DIR, else the usual system directory."""
    given = os.environ.get("SSL_CERT_DIR", "").split(os.pathsep)[0]
    if given:
        return given
    found = [d for d in ("/etc/ssl/certs", "/usr/lib/ssl/certs", "/etc/pki/tls/certs") if os.path.isdir(d)]
    return found[0] if found else "/etc/ssl/certs"


def load() -> None:
    """Import pygit2 (see the module's docstring); once imported, this does nothing."""
    if "pygit2" in sys.modules:
        return
    if "ssl" in sys.modules:  # paid for already: nothing to gain
        import pygit2  # noqa: F401
        return
    stand_in = types.ModuleType("ssl")
    stand_in.DefaultVerifyPaths = _Paths  # type: ignore[attr-defined]
    directory = certificate_dir()
    stand_in.get_default_verify_paths = lambda: _Paths(None, directory, "SSL_CERT_FILE", None, "SSL_CERT_DIR", directory)  # type: ignore[attr-defined]
    sys.modules["ssl"] = stand_in
    try:
        import pygit2  # noqa: F401
    except Exception:  # noqa: BLE001 - not as expected: the ordinary import below, which raises what is really wrong
        for name in [n for n in sys.modules if n == "pygit2" or n.startswith("pygit2.")]:
            del sys.modules[name]
    finally:
        if sys.modules.get("ssl") is stand_in:
            del sys.modules["ssl"]
    import pygit2  # noqa: F401,F811
