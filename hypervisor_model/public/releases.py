"""The Xen releases a host can speak, and every way they differ on the modelled calls.

Real Xen accepts exactly its own release's interface versions and layouts. A host is
booted as one release (master unless asked) and a libxenctrl handle speaks one release;
this module is the one place that says what each release means. Everything not listed
here is the same in both releases (pinned, layout by layout, in the tests), and the
NUMA claim sets are available on both, as a vendor backport of the v7 series would have
them: the allocator and claim accounting are master's with v7 on every release.
"""

from __future__ import annotations

from typing import NamedTuple

from construct import Construct, Struct

from . import domctl, sysctl
from .xen import DOMID_ANY, HYPERVISOR_domctl, HYPERVISOR_sysctl

# XEN_DOMCTL_createdomain payload of Xen 4.17 (64 bytes): master's without the altp2m
# member, so vmtrace_size, cpupool_id and arch sit 4 bytes earlier (4.17 domctl.h).
xen_domctl_createdomain_4_17: Construct = Struct(
    *(field for field in domctl.xen_domctl_createdomain.subcons if field.name != "altp2m")
)

# init_xen_cap_info: PV (with 32-bit PV guests, which the model runs) and HVM; Xen leaves
# a space after every word, the last one too, and xl prints the string as it is.
CAPABILITIES = "xen-3.0-x86_64 xen-3.0-x86_32p hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64 "


class Release(NamedTuple):
    """One Xen release's hypercall ABI and behaviour where it differs from another's."""

    name: str  # how a user asks for it: ``boot(xen=...)``, ``xlemu host init --xen ...``
    # -- what XENVER_* report (xen/Makefile, compile.h) --
    major: int
    minor: int
    extraversion: str
    changeset: str
    compiler: str
    compile_by: str
    compile_domain: str
    compile_date: str
    capabilities: str
    # -- the interface versions do_domctl and do_sysctl accept; anything else is EACCES --
    domctl_interface_version: int
    sysctl_interface_version: int
    # -- domctl --
    xen_domctl_createdomain: Construct
    stable_domctls: frozenset[int]  # carry interface_version 0 (is_stable_domctl)
    missing_domctls: frozenset[int]  # modelled commands the release lacks: ENOSYS
    # domid.c (4.22): only DOMID_ANY picks a free domid, from a bitmap that keeps the id of a
    # create that failed its checks, and none free is EEXIST. Before: 0 or any reserved id
    # picks, from a rover excluding itself, a failed create frees its id, none free is
    # ENOMEM (4.17 domctl.c XEN_DOMCTL_createdomain).
    has_domid_any: bool
    # A missing domain answers getdomaininfo with the next existing one, a reserved id is
    # EINVAL (4.17 domctl.c); master looks the id up exactly.
    getdomaininfo_next: bool
    # Master's do_domctl answers EPERM instead of ESRCH for a missing domain unless the
    # caller is the control domain; 4.17 answers ESRCH to everyone.
    missing_domain_eperm: bool
    # emulation_flags_ok: master's HVM domU may leave out USE_PIRQ; 4.17 requires exactly
    # every emulator but vPCI (or only the LAPIC, for PVH).
    hvm_pirq_optional: bool
    # grant_table_init: 4.17 refuses more grant / maptrack frames than its defaults
    # (opt_max_grant_frames 64, opt_max_maptrack_frames 1024); master caps neither.
    grant_frame_caps: tuple[int, int] | None
    # bitmap_to_xenctl_bitmap: master writes Xen's *last* byte into the last byte of a
    # shorter caller bitmap; 4.17 copies the leading bytes as they are.
    bitmap_last_byte_quirk: bool
    # -- multicall --
    # do_multicall's nr_calls: master takes an unsigned long, 4.17 a uint32_t (the upper
    # half of the argument word is dropped).
    multicall_nr_calls_bits: int
    # -- xen_version --
    # Master has the variable-length sub-ops (XENVER_*2, xenver_varbuf_op) and finds its
    # build id before reading the caller's buffer; 4.17 has no *2 sub-ops (ENOSYS) and
    # reads the caller's xen_build_id first (EFAULT, EINVAL for len 0).
    xenver_varbuf: bool
    # Master's release builds give an HVM caller 0 for XENVER_platform_parameters; 4.17
    # gives everyone HYPERVISOR_VIRT_START.
    platform_parameters_pv_only: bool
    # XENVER_get_features: master also reports runstate_phys_area, vcpu_time_phys_area and
    # dm_msix_all_writes (kernel.c); 4.17 knows none of the three.
    xenfeat_phys_areas: bool

    @property
    def version(self) -> str:
        """The version as Xen prints it, ``4.17.5`` or ``4.23-unstable``."""
        return f"{self.major}.{self.minor}{self.extraversion}"

    def interface_version(self, hypercall: int) -> int:
        """The version ``domctl`` or ``sysctl`` must carry on this release."""
        if hypercall == HYPERVISOR_domctl:
            return self.domctl_interface_version
        if hypercall == HYPERVISOR_sysctl:
            return self.sysctl_interface_version
        raise ValueError(f"expected the domctl or sysctl hypercall, got {hypercall}")

    @property
    def any_domid(self) -> int:
        """The domid a toolstack of this release passes to createdomain to let Xen pick."""
        return DOMID_ANY if self.has_domid_any else 0


# Xen master at c447b7308b13: 4.23-unstable (xen/Makefile), the model's specification.
MASTER = Release(
    name="master",
    major=4,
    minor=23,
    extraversion="-unstable",
    changeset="xenemu model of c447b7308b13",
    compiler="xenemu",
    compile_by="xenemu",
    compile_domain="",
    compile_date="2026-08-20",
    capabilities=CAPABILITIES,
    domctl_interface_version=domctl.XEN_DOMCTL_INTERFACE_VERSION,
    sysctl_interface_version=sysctl.XEN_SYSCTL_INTERFACE_VERSION,
    xen_domctl_createdomain=domctl.xen_domctl_createdomain,
    stable_domctls=frozenset({domctl.XEN_DOMCTL_get_domain_state}),
    missing_domctls=frozenset(),
    has_domid_any=True,
    getdomaininfo_next=False,
    missing_domain_eperm=True,
    hvm_pirq_optional=True,
    grant_frame_caps=None,
    bitmap_last_byte_quirk=True,
    multicall_nr_calls_bits=64,
    xenver_varbuf=True,
    platform_parameters_pv_only=True,
    xenfeat_phys_areas=True,
)

# Xen 4.17 as Debian 12 ships it (package 4.17.5+72-g01140da4e8-1). The stable-4.17 branch
# was not bumped to 4.17.6-pre after 4.17.5, so at 01140da4e8 xen/Makefile still says ".5",
# and Debian's hypervisor takes its extraversion from there: it reports 4.17.5. Debian's
# patch "Display Debian package version in hypervisor log" puts the maintainer's address
# into compile_by/compile_domain; the source package has no SCM data, so the changeset is
# empty; the build date is the upload's (changelog: Sat, 29 Nov 2025 14:52:25 +0100).
XEN_4_17 = Release(
    name="4.17",
    major=4,
    minor=17,
    extraversion=".5",
    changeset="",
    compiler="x86_64-linux-gnu-gcc (Debian 12.2.0-14+deb12u1) 12.2.0",
    compile_by="pkg-xen-devel",
    compile_domain="lists.alioth.debian.org",
    compile_date="Sat Nov 29 13:52:25 UTC 2025",
    capabilities=CAPABILITIES,
    domctl_interface_version=0x15,
    sysctl_interface_version=0x15,
    xen_domctl_createdomain=xen_domctl_createdomain_4_17,
    stable_domctls=frozenset(),
    missing_domctls=frozenset({domctl.XEN_DOMCTL_get_domain_state}),
    has_domid_any=False,
    getdomaininfo_next=True,
    missing_domain_eperm=False,
    hvm_pirq_optional=False,
    grant_frame_caps=(64, 1024),
    bitmap_last_byte_quirk=False,
    multicall_nr_calls_bits=32,
    xenver_varbuf=False,
    platform_parameters_pv_only=False,
    xenfeat_phys_areas=False,
)

RELEASES: dict[str, Release] = {r.name: r for r in (MASTER, XEN_4_17)}


class UnknownRelease(ValueError):
    """A release name or version no host of this model speaks."""


def release(name: str) -> Release:
    """The release called ``name`` ("master", "4.17")."""
    try:
        return RELEASES[name]
    except (KeyError, TypeError):
        raise UnknownRelease(
            f"xen: expected one of {', '.join(map(repr, RELEASES))}, got {name!r}"
        ) from None


def release_of_version(major: int, minor: int) -> Release:
    """The release whose XENVER_version is ``major.minor``."""
    for r in RELEASES.values():
        if (r.major, r.minor) == (major, minor):
            return r
    known = ", ".join(f"{r.major}.{r.minor}" for r in RELEASES.values())
    raise UnknownRelease(f"expected a host running Xen {known}, got Xen {major}.{minor}")


def version_mismatch(host: Release, hypercall: int, version: int) -> str | None:
    """Why a domctl or sysctl carrying interface ``version`` got EACCES on ``host``: one
    line naming both versions and how to make a host that speaks the caller's, or None when
    the version is the host's own (the EACCES had another cause)."""
    expected = host.interface_version(hypercall)
    if version == expected:
        return None
    name = "domctl" if hypercall == HYPERVISOR_domctl else "sysctl"
    all_releases = RELEASES.values()
    speaks = [r for r in all_releases if r.interface_version(hypercall) == version]
    if speaks:
        fix = f"make a {speaks[0].name} host with `xlemu host init --xen {speaks[0].name}`"
    else:
        known = ", ".join(
            f"{r.name} {r.interface_version(hypercall):#x}" for r in RELEASES.values()
        )
        fix = f"no release this model emulates speaks it ({known})"
    return (
        f"the host speaks Xen {host.version} ({name} {expected:#x}); "
        f"this program speaks {version:#x}: {fix}"
    )
