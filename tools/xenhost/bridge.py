"""Build the privcmd bridge (``bridge.c``) and prepare a C program's environment for it.

The bridge is compiled with the system C compiler on first use, into the user's cache
directory under a name keyed by the source's hash, so an edited source is rebuilt and
concurrent first uses do not trip over each other (each builds privately, then renames).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

SOURCE = Path(__file__).with_name("bridge.c")
CFLAGS = ["-std=gnu11", "-shared", "-fPIC", "-O2", "-Wall"]
LIBS = ["-ldl", "-lpthread"]
NO_COMPILER = "the privcmd bridge needs a C compiler: apt-get install -y gcc"


class BridgeError(Exception):
    """The bridge cannot be built (no compiler, or it refused the source)."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "xenemu"


def compiler() -> str | None:
    """The C compiler: $CC, else cc, else gcc (None if there is none)."""
    for name in (os.environ.get("CC"), "cc", "gcc"):
        if name and (found := shutil.which(name)):
            return found
    return None


def library() -> Path:
    """The bridge's shared library, built now unless the cache has this source's build."""
    source = SOURCE.read_bytes()
    key = hashlib.sha256(source + " ".join(CFLAGS + LIBS).encode()).hexdigest()[:16]
    target = cache_dir() / f"privcmd-bridge-{key}.so"
    if target.exists():
        return target
    cc = compiler()
    if cc is None:
        raise BridgeError(NO_COMPILER)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        done = subprocess.run(
            [cc, *CFLAGS, "-o", str(tmp), str(SOURCE), *LIBS],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            first = (done.stderr.strip().splitlines() or ["no message"])[0]
            raise BridgeError(f"building the privcmd bridge with {cc} failed: {first}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def environment(
    socket: str | os.PathLike[str], domid: int = 0, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``base`` (default: this process's environment) with the bridge preloaded, aimed at
    the host server listening on ``socket``, calling as ``domid``."""
    env = dict(os.environ if base is None else base)
    preload = [str(library()), *env.get("LD_PRELOAD", "").split()]
    env.update(
        LD_PRELOAD=" ".join(preload), XENEMU_SERVER=os.fspath(socket), XENEMU_DOMID=str(domid)
    )
    return env
