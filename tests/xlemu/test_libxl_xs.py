"""What ``xlemu`` keeps in the host's xenstore, as libxl and xen-init-dom0 keep it: the
paths, values and permissions a create writes (libxl__domain_make, libxl__build_post),
what a destroy removes (devices_destroy_cb), and names that any xenstore client may write.

Host: 2 nodes x 4096 MiB, 4 CPUs per node, dom0 512 MiB.
"""

from __future__ import annotations

import uuid

import pytest
from xenhost.xenstore import Store, XsHandle
from xlemu.create import create_domain
from xlemu.state import forget_dead_domains, new_xenstore
from xlemu.toolstack import Toolstack, ToolstackError

from hypervisor_model import Hypervisor, make_host
from xenctrl import domain as xcd


@pytest.fixture
def store() -> Store:
    return new_xenstore()


@pytest.fixture
def ts(store: Store) -> Toolstack:
    hv = Hypervisor(make_host([4096, 4096], cpus_per_node=4, dom0_memory=512))
    return Toolstack(hv, XsHandle.local(store))


def perms(ts: Toolstack, path: str) -> list[str]:
    return ts.xs.get_permissions(path)


def read(ts: Toolstack, path: str) -> str:
    return ts.xs.read(path).decode()


def test_a_new_host_has_dom0_and_pool_0(ts: Toolstack) -> None:
    """xen-init-dom0: dom0's domid and name, and Pool-0, which xl create insists on."""
    assert read(ts, "/local/domain/0/name") == "Domain-0"
    assert read(ts, "/local/domain/0/domid") == "0"
    assert read(ts, "/local/pool/0/name") == "Pool-0"
    assert ts.xs.directory("/") == ["tool", "local"]


def test_an_hvm_guest(ts: Toolstack) -> None:
    """memory = 1024 MiB, 2 vCPUs: target 1048576 - 8192 KiB of video RAM = 1040384."""
    domid = create_domain(ts, "/dev/null", ['name="web"', 'type="hvm"', "memory=1024", "vcpus=2"],
                          paused=True)  # fmt: skip
    home = f"/local/domain/{domid}"
    assert ts.xs.directory(home) == [
        "vm", "name", "cpu", "memory", "device", "control", "hvmloader",
        "data", "drivers", "feature", "attr", "error", "domid", "platform",
    ]  # fmt: skip
    assert read(ts, f"{home}/name") == "web"
    assert read(ts, f"{home}/domid") == str(domid)
    assert [read(ts, f"{home}/memory/{leaf}") for leaf in ("static-max", "target", "videoram")] == [
        "1048576",
        "1040384",
        "8192",
    ]
    assert ts.xs.directory(f"{home}/cpu") == ["0", "1"]
    assert read(ts, f"{home}/cpu/1/availability") == "online"
    assert ts.xs.directory(f"{home}/control") == [
        "shutdown", "feature-poweroff", "feature-reboot", "feature-suspend", "feature-s3",
        "feature-s4", "sysrq", "platform-feature-multiprocessor-suspend",
        "platform-feature-xs_reset_watches",
    ]  # fmt: skip
    platform = ts.xs.directory(f"{home}/platform")
    assert {leaf: read(ts, f"{home}/platform/{leaf}") for leaf in platform} == {
        "acpi": "1", "acpi_s3": "1", "acpi_s4": "1", "acpi_laptop_slate": "0",
        "device-model": "qemu_xen",
    }  # fmt: skip
    # libxl's permissions: dom0's and readable by the guest, or the guest's own
    assert perms(ts, home) == perms(ts, f"{home}/name") == ["n0", f"r{domid}"]
    assert perms(ts, f"{home}/control") == ["n0", f"r{domid}"]
    assert perms(ts, f"{home}/control/shutdown") == perms(ts, f"{home}/data") == [f"n{domid}"]
    assert perms(ts, f"{home}/device/suspend/event-channel") == [f"n{domid}"]
    # /vm/<uuid>, the uuid being the domain's handle in Xen
    vm = read(ts, f"{home}/vm")
    handle = bytes(xcd.xc_domain_getinfo_single(ts.xch, domid).handle)
    assert vm == f"/vm/{uuid.UUID(bytes=handle)}"
    assert ts.xs.directory(vm) == ["name", "uuid", "rtc", "image", "start_time"]
    assert (read(ts, f"{vm}/name"), read(ts, f"{vm}/uuid")) == ("web", vm[4:])
    assert read(ts, f"{vm}/image/ostype") == "hvm"
    assert perms(ts, vm) == ["n0", f"r{domid}"]
    # /libxl/<domid>: dom0's alone
    assert ts.xs.directory(f"/libxl/{domid}") == ["device", "type", "dm-version"]
    assert (read(ts, f"/libxl/{domid}/type"), read(ts, f"/libxl/{domid}/dm-version")) == (
        "hvm",
        "qemu_xen",
    )
    assert perms(ts, f"/libxl/{domid}") == ["n0"]


def test_a_pv_guest(ts: Toolstack) -> None:
    domid = create_domain(
        ts,
        "/dev/null",
        [
            'name="pv"',
            "memory=256",
            'kernel="/boot/vmlinuz"',
            'uuid="0123ABCD-0000-4000-8000-00000000BEEF"',
        ],
        paused=True,
    )
    home = f"/local/domain/{domid}"
    assert "hvmloader" not in ts.xs.directory(home) and "platform" not in ts.xs.directory(home)
    assert "feature-s3" not in ts.xs.directory(f"{home}/control")
    assert read(ts, f"{home}/memory/target") == read(ts, f"{home}/memory/static-max") == "262144"
    assert read(ts, f"{home}/vm") == "/vm/0123abcd-0000-4000-8000-00000000beef"
    vm = read(ts, f"{home}/vm")
    assert (read(ts, f"{vm}/image/ostype"), read(ts, f"{vm}/image/kernel")) == (
        "linux",
        "/boot/vmlinuz",
    )
    assert read(ts, f"/libxl/{domid}/type") == "pv"


def test_a_bad_uuid(ts: Toolstack) -> None:
    with pytest.raises(ToolstackError, match=r"^Failed to parse UUID: 1234$"):
        create_domain(ts, "/dev/null", ['name="u"', 'uuid="1234"'], paused=True)


def test_destroy_removes_what_create_wrote(store: Store, ts: Toolstack) -> None:
    before = ts.xs.directory("/local/domain")
    domid = create_domain(ts, "/dev/null", ['name="gone"', "memory=64"], paused=True)
    ts.destroy("gone")
    assert ts.xs.directory("/local/domain") == before
    assert ts.xs.directory("/vm") == [] and ts.xs.directory("/libxl") == []
    assert ts.find_domain_by_name("gone") is None
    assert ts.name(domid) == "(null)"
    assert store.problems() == []


def test_a_failed_build_leaves_nothing_behind(ts: Toolstack) -> None:
    """8000 MiB on a host with 7680 MiB free: the build fails, libxl destroys the domain
    and its xenstore entries with it."""
    with pytest.raises(ToolstackError, match="cannot \\(re-\\)build domain"):
        create_domain(ts, "/dev/null", ['name="big"', "memory=8000"], paused=True)
    assert ts.xs.directory("/local/domain") == ["0"]
    assert ts.xs.directory("/vm") == [] and ts.xs.directory("/libxl") == []


def test_names_come_from_xenstore(ts: Toolstack) -> None:
    """Another xenstore client (xl, xenstore-write) renaming a domain renames it for
    xlemu too; a domain without a name is listed as (null), as xl lists it."""
    domid = create_domain(ts, "/dev/null", ['name="old"', "memory=64"], paused=True)
    with ts.xs.another() as other:
        other.write(f"/local/domain/{domid}/name", "renamed")
    assert ts.find_domain_by_name("renamed") == domid
    assert ts.list_lines("renamed")[1].startswith("renamed ")
    ts.xs.rm(f"/local/domain/{domid}/name")
    assert ts.list_lines(str(domid))[1].startswith("(null) ")


def test_memory_sizes_live_in_xenstore(ts: Toolstack) -> None:
    """mem-max writes memory/static-max; mem-set writes memory/target (the size less video
    RAM) and is held to static-max; dom0's sizes are first filled in from Xen."""
    domid = create_domain(ts, "/dev/null", ['name="m"', "memory=256"], paused=True)
    memory = f"/local/domain/{domid}/memory"
    ts.mem_max("m", "512")
    assert read(ts, f"{memory}/static-max") == "524288"
    ts.mem_set("m", "384")
    assert read(ts, f"{memory}/target") == "393216"
    with pytest.raises(ToolstackError, match="dynamic max"):
        ts.mem_set("m", "513")
    ts.mem_set("0", "256")
    assert read(ts, "/local/domain/0/memory/target") == "262144"
    assert read(ts, "/local/domain/0/memory/static-max") == "524288"  # dom0's 512 MiB max


def test_a_dead_domain_loses_what_it_owned(store: Store, ts: Toolstack) -> None:
    """When the state is saved the xenstore forgets dead domains, as xenstored does when
    Xen reports them: nodes they owned go, their permission entries are dropped."""
    domid = create_domain(ts, "/dev/null", ['name="d"', "memory=64"], paused=True)
    ts.xs.write("/local/domain/0/backend/vbd", "")
    ts.xs.set_permissions("/local/domain/0/backend/vbd", [f"n{domid}"])
    ts.xs.write("/shared", "")
    ts.xs.set_permissions("/shared", ["n0", f"r{domid}"])
    xcd.xc_domain_destroy(ts.xch, domid)  # without the toolstack's clean-up
    forget_dead_domains(ts.hv, store)
    assert ts.xs.directory("/local/domain/0/backend") == []
    assert perms(ts, "/shared") == ["n0"]
    # what libxl made the guest's own (control/shutdown, data, ...) went with it
    home = f"/local/domain/{domid}"
    assert ts.xs.directory(home) == ["vm", "name", "cpu", "memory", "device", "control", "domid"]
    assert ts.xs.directory(f"{home}/control") == [
        "platform-feature-multiprocessor-suspend",
        "platform-feature-xs_reset_watches",
    ]
