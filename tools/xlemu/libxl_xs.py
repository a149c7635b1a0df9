"""What libxl (and xen-init-dom0) keep in xenstore for each domain, written, read and
removed as they do it, so that ``xl`` and ``xlemu`` on one host see the same domains.

Paths and permissions come from libxl__domain_make (libxl_create.c), store_libxl_entry,
libxl__domain_build and libxl__build_post (libxl_dom.c), devices_destroy_cb
(libxl_domain.c) and xen-init-dom0.c. There are no event channels or ring pages here, so
``store/port`` and ``store/ring-ref`` are not written and no domain is introduced.
"""

from __future__ import annotations

import contextlib
import time
from typing import NamedTuple

from xenhost.xenstore import XenstoreError, XsHandle

POOL_NAME = "/local/pool/0/name"
DM_VERSION = "qemu_xen"  # libxl's default device model, for every type
LIBXL_MAXMEM_CONSTANT_KB = 1024


def dom_path(domid: int) -> str:
    """libxl__xs_get_dompath: what GET_DOMAIN_PATH answers."""
    return f"/local/domain/{domid}"


def libxl_path(domid: int) -> str:
    return f"/libxl/{domid}"


def _roperm(domid: int) -> list[str]:
    return ["n0", f"r{domid}"]  # dom0's, readable by the domain


def _rwperm(domid: int) -> list[str]:
    return [f"n{domid}"]  # the domain's own


NOPERM = ["n0"]


def _rm(xs: XsHandle, path: str, t: int = 0) -> None:
    """xs_rm as libxl calls it here: a failure (nothing there) is no reason to stop."""
    with contextlib.suppress(XenstoreError):
        xs.rm(path, t)


def _mknod(xs: XsHandle, t: int, path: str, perms: list[str]) -> None:
    """libxl__xs_mknod: an empty node with these permissions."""
    xs.write(path, "", t)
    xs.set_permissions(path, perms, t)


def init_dom0(xs: XsHandle) -> None:
    """xen-init-dom0: dom0's domid and name, and a name for each CPU pool (the host has
    Pool-0 alone); a host already set up is left alone."""
    if xs.try_read("/local/domain/0/domid") and xs.try_read("/local/domain/0/name"):
        return
    xs.write("/local/domain/0/domid", "0")
    xs.write("/local/domain/0/name", "Domain-0")
    xs.write(POOL_NAME, "Pool-0")


def domain_name(xs: XsHandle, domid: int) -> str | None:
    """libxl_domid_to_name."""
    value = xs.try_read(f"{dom_path(domid)}/name")
    return None if value is None else value.decode("utf-8", "replace")


class DomainInfo(NamedTuple):
    """What libxl writes about a domain it makes and builds."""

    name: str
    uuid: str
    type: str  # "hvm", "pv" or "pvh" (libxl_domain_type_to_string)
    max_memkb: int
    target_memkb: int
    video_memkb: int
    vcpus: int
    kernel: str | None = None  # a PV guest's kernel= file

    @property
    def vm_path(self) -> str:
        return f"/vm/{self.uuid}"

    def target_fudge(self) -> int:
        """libxl__get_targetmem_fudge: what memory/target leaves out of the target."""
        pod = self.type == "hvm" and self.max_memkb > self.target_memkb
        return (LIBXL_MAXMEM_CONSTANT_KB if pod else 0) + self.video_memkb


def domain_make(xs: XsHandle, domid: int, info: DomainInfo) -> None:
    """libxl__domain_make's transaction: the domain's home, its /vm and /libxl entries,
    the directories the guest may write, its name; then store_libxl_entry."""
    dom, vm, lib = dom_path(domid), info.vm_path, libxl_path(domid)
    ro, rw = _roperm(domid), _rwperm(domid)

    def make(t: int) -> None:
        for path, perms in ((dom, ro), (vm, ro), (lib, NOPERM)):
            _rm(xs, path, t)
            _mknod(xs, t, path, perms)
        _mknod(xs, t, f"{lib}/device", NOPERM)
        xs.write(f"{dom}/vm", vm, t)
        xs.write(f"{dom}/name", info.name, t)  # libxl__domain_rename, which also
        xs.write(f"{vm}/name", info.name, t)  # names /vm/<uuid> (again below)
        nodes = [("cpu", ro), ("memory", ro), ("device", ro), ("device/suspend/event-channel", rw)]
        nodes += [("control", ro)] + ([("hvmloader", ro)] if info.type == "hvm" else [])
        features = ["shutdown", "feature-poweroff", "feature-reboot", "feature-suspend"]
        features += ["feature-s3", "feature-s4"] if info.type == "hvm" else []
        nodes += [(f"control/{f}", rw) for f in [*features, "sysrq"]]
        nodes += [(leaf, rw) for leaf in ("data", "drivers", "feature", "attr", "error")]
        for leaf, perms in nodes:
            _mknod(xs, t, f"{dom}/{leaf}", perms)
        xs.write(f"{vm}/uuid", info.uuid, t)
        xs.write(f"{vm}/name", info.name, t)
        xs.write(f"{dom}/control/platform-feature-multiprocessor-suspend", "1", t)
        xs.write(f"{dom}/control/platform-feature-xs_reset_watches", "1", t)
        xs.write(f"{lib}/type", info.type, t)

    xs.transact(make)
    xs.write(f"{lib}/dm-version", DM_VERSION)


def build_post(xs: XsHandle, domid: int, info: DomainInfo) -> None:
    """libxl__domain_build's entries and libxl__build_post's transaction: the sizes the
    domain was built with, its vCPUs, its platform and its start time."""
    now = time.time()
    start_time = f"{int(now)}.{int(now * 100) % 100:02d}"  # seconds and hundredths
    local = {
        "memory/static-max": str(info.max_memkb),
        "memory/target": str(info.target_memkb - info.target_fudge()),
        "memory/videoram": str(info.video_memkb),
        "domid": str(domid),
        **{f"cpu/{i}/availability": "online" for i in range(info.vcpus)},
    }
    vm: dict[str, str] = {"start_time": start_time}
    if info.type == "hvm":
        vm = {"rtc/timeoffset": "", "image/ostype": "hvm", **vm}
        local |= {f"platform/{k}": "1" for k in ("acpi", "acpi_s3", "acpi_s4")}
        local |= {"platform/acpi_laptop_slate": "0", "platform/device-model": DM_VERSION}
    elif info.type == "pv":
        kernel = {"image/kernel": info.kernel} if info.kernel else {}
        vm = {"image/ostype": "linux", **kernel, **vm}
    vm_path = (xs.try_read(f"{dom_path(domid)}/vm") or b"").decode()

    def write(t: int) -> None:
        for leaf, value in local.items():
            xs.write(f"{dom_path(domid)}/{leaf}", value, t)
        for leaf, value in vm.items() if vm_path else ():
            xs.write(f"{vm_path}/{leaf}", value, t)

    xs.transact(write)


def destroy(xs: XsHandle, domid: int) -> None:
    """devices_destroy_cb: the domain's /vm entry, its home, its libxl entry."""
    vm_path = xs.try_read(f"{dom_path(domid)}/vm")
    if vm_path:
        _rm(xs, vm_path.decode())
    for path in (dom_path(domid), libxl_path(domid), f"{dom_path(domid)}/hvmloader"):
        _rm(xs, path)


def read_kb(xs: XsHandle, path: str, t: int = 0) -> int | None:
    """A size libxl reads back with strtoull: None if missing or not a plain number."""
    value = xs.try_read(path, t)
    return int(value) if value is not None and value.isdigit() else None
