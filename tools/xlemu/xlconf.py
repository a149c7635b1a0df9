"""xl.conf, the toolstack's global settings, and how xl reports a file it cannot parse.

Every command reads xl.conf, so this stays small: the config parser is loaded only when
there is a file to parse, and nothing here builds domains.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hypervisor_model.public.errno import EINVAL
from xlemu.toolstack import ToolstackError, XlConf

if TYPE_CHECKING:
    from xenguest.dom import ClaimMode
    from xlemu.xlcfg import ConfigError

CLAIM_MODES: dict[str, ClaimMode] = {
    "0": "off",
    "1": "legacy",
    "off": "off",
    "legacy": "legacy",
    "numa": "numa",
}


def read_xl_conf(state_file: Path) -> XlConf:
    """xl.conf from $XL_GLOBAL_CONFIG or beside the state file; claim_mode 0/1 as in xl,
    or legacy/numa/off by name."""
    path = Path(os.environ.get("XL_GLOBAL_CONFIG") or state_file.with_name("xl.conf"))
    if not path.exists():
        return XlConf()
    from xlemu import xlcfg  # the parser, only for a file to parse

    try:
        cfg = xlcfg.parse_file(path, report=sys.stderr)
    except xlcfg.ConfigError as e:  # parse_global_config in xl.c
        raise parse_failure(e, "Failed to parse config file") from None
    value = cfg.get_string("claim_mode", dont_warn=True).value
    if value is None:
        return XlConf()
    mode = CLAIM_MODES.get(value.strip().lower())
    if mode is None:
        raise ToolstackError(
            f"{path}: claim_mode: expected 0, 1, legacy, numa or off, got {value!r}"
        )
    return XlConf(claim_mode=mode)


def parse_failure(e: ConfigError, what: str) -> ToolstackError:
    """What xl prints for a file libxlu cannot parse: libxlu's error line, its hint when
    the file looks like Python, then xl's line with strerror(EINVAL)."""
    from xlemu.xlcfg import PYTHON_WARNING

    hint = PYTHON_WARNING if e.likely_python else ()
    return ToolstackError("\n".join([str(e), *hint, f"{what}: {os.strerror(EINVAL)}"]))
