"""A domain's configuration as libxl writes it in JSON (libxl_domain_config in
libxl_types.idl): what ``xl -N create`` and ``xl list -l`` print.

Keys are the IDL's names in its order, and, as libxl's generator does, a field is left out
while it holds its default; fields xlemu does not model are left out too. The text is
pretty-printed with four spaces, as libxl's yajl generator does.
"""

from __future__ import annotations

import json
import uuid as uuidlib
from collections.abc import Sequence
from typing import Any


def domain_config(
    *,
    type: str,
    name: str,
    uuid: str | None,
    max_vcpus: int,
    max_memkb: int,
    target_memkb: int,
    video_memkb: int | None = None,
    vnuma: Sequence[Sequence[int]] = (),
) -> dict[str, Any]:
    """libxl_domain_config: c_info (type, name, uuid) and b_info (vCPUs, memory, vNUMA)."""
    c_info: dict[str, Any] = {"type": type, "name": name}
    if uuid is not None:
        c_info["uuid"] = uuid
    b_info: dict[str, Any] = {
        "max_vcpus": max_vcpus,
        "avail_vcpus": list(range(max_vcpus)),  # a libxl_bitmap: its set bits
        "max_memkb": max_memkb,
        "target_memkb": target_memkb,
    }
    if video_memkb is not None:
        b_info["video_memkb"] = video_memkb
    if vnuma:
        b_info["vnuma_nodes"] = [{"memkb": mib << 10, "pnode": pnode} for pnode, mib in vnuma]
    return {"c_info": c_info, "b_info": b_info}


def uuid_text(handle: bytes) -> str:
    """A domain handle as LIBXL_UUID_FMT prints it."""
    return str(uuidlib.UUID(bytes=bytes(handle)))


def to_json(value: Any) -> str:
    return json.dumps(value, indent=4)
