"""The xenemu pytest plugin (xenctrl/pytest_plugin.py), run inside throwaway pytest sessions
with ``pytester``: host presets, the marker, indirect parametrization, the teardown
invariant check, and the ``xch`` / ``xenctrl_api`` fixtures.

Page arithmetic: 1 MiB = 256 pages; MFN 0 is never free, dom0's structure and shared-info
pages are Xen's, and so are 4 pages of every node but the first (init_node_heap), so
free = total - 1 - 2 - 4 * (nodes - 1) - dom0's pages.
"""

from __future__ import annotations

import pytest

from xenctrl.api import NodeMemory, Xenctrl

pytest_plugins = ["pytester"]


# In-process runs restore sys.modules afterwards: keep hypothesis from re-importing each time.
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


def run(pytester: pytest.Pytester, source: str) -> pytest.RunResult:
    pytester.makepyfile(source)
    return pytester.runpytest(*QUIET)


def test_default_host_is_two_4096_mib_nodes(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        def test_host(xenctrl_api):
            info = xenctrl_api.physinfo()
            assert info.nr_nodes == 2
            assert info.total_pages == 2 * 4096 * 256  # 2097152
            assert info.free_pages == 2097152 - 1 - 2 - 4
        """,
    )
    result.assert_outcomes(passed=1)


def test_marker_selects_a_preset(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest

        @pytest.mark.xen_host("one-node")
        def test_host(xenctrl_api):
            info = xenctrl_api.physinfo()
            assert (info.nr_nodes, info.total_pages) == (1, 8192 * 256)
        """,
    )
    result.assert_outcomes(passed=1)


def test_marker_boot_keywords_describe_the_host(pytester: pytest.Pytester) -> None:
    """3 x 2048 MiB = 1572864 pages; dom0 512 MiB = 131072 pages;
    free 1572864 - 1 - 2 - 2 * 4 - 131072 = 1441781."""
    result = run(
        pytester,
        """
        import pytest

        @pytest.mark.xen_host(nodes=[2048, 2048, 2048], dom0_memory=512)
        def test_host(xenctrl_api):
            info = xenctrl_api.physinfo()
            assert (info.nr_nodes, info.total_pages) == (3, 1572864)
            assert info.free_pages == 1441781
            assert xenctrl_api.domain_getinfo(0).tot_pages == 131072
        """,
    )
    result.assert_outcomes(passed=1)


def test_marker_keywords_refine_a_preset(pytester: pytest.Pytester) -> None:
    """one-node (8192 MiB = 2097152 pages) with dom0 1024 MiB = 262144 pages."""
    result = run(
        pytester,
        """
        import pytest

        @pytest.mark.xen_host("one-node", dom0_memory=1024)
        def test_host(xenctrl_api):
            info = xenctrl_api.physinfo()
            assert (info.nr_nodes, info.total_pages) == (1, 2097152)
            assert info.free_pages == 2097152 - 1 - 2 - 262144
        """,
    )
    result.assert_outcomes(passed=1)


def test_marker_keywords_without_a_topology_refine_the_default_preset(
    pytester: pytest.Pytester,
) -> None:
    """Only dom0_memory given: the nodes still come from the default two-nodes preset."""
    result = run(
        pytester,
        """
        import pytest

        @pytest.mark.xen_host(dom0_memory=256)
        def test_host(xenctrl_api):
            info = xenctrl_api.physinfo()
            assert (info.nr_nodes, info.total_pages) == (2, 2097152)
            assert info.free_pages == 2097152 - 1 - 2 - 4 - 256 * 256
        """,
    )
    result.assert_outcomes(passed=1)


def test_indirect_parametrization_with_preset_names(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest

        @pytest.mark.parametrize(
            ("xen_host", "nodes"),
            [("one-node", 1), ("two-nodes", 2), ("four-nodes-1tib", 4)],
            indirect=["xen_host"],
        )
        def test_host(xen_host, xenctrl_api, nodes):
            assert xenctrl_api.physinfo().nr_nodes == nodes
        """,
    )
    result.assert_outcomes(passed=3)


def test_unknown_preset_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest

        @pytest.mark.xen_host("eight-nodes")
        def test_host(xen_host):
            pass
        """,
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*UsageError*xen_host: expected one of*'eight-nodes'*"])


def test_marker_is_registered_for_strict_markers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.xen_host("one-node")
        def test_host(xen_host):
            pass
        """
    )
    pytester.runpytest("--strict-markers", *QUIET).assert_outcomes(passed=1)


def test_broken_invariant_fails_the_teardown(pytester: pytest.Pytester) -> None:
    """The test passes, then the fixture's check finds total_avail_pages != the sum of
    node_avail_pages and reports an error at teardown."""
    result = run(
        pytester,
        """
        def test_corrupts(xen_host):
            xen_host.heap.total_avail_pages -= 1
        """,
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_corrupts*", "*InvariantError*total_avail_pages*"]
    )


def test_xch_and_xenctrl_api_share_the_host_and_xch_is_closed_after(
    pytester: pytest.Pytester,
) -> None:
    result = run(
        pytester,
        """
        import xenctrl

        handles = []

        def test_share(xen_host, xch, xenctrl_api):
            handles.append(xch)
            assert xch.hv is xen_host and xch.domid == 0
            d = xenctrl_api.domain_create()
            assert xenctrl.xc_domain_getinfo_single(xch, d).domain == d

        def test_closed_afterwards():
            assert handles[0].closed
        """,
    )
    result.assert_outcomes(passed=2)


def test_each_test_gets_a_fresh_host(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest

        @pytest.mark.parametrize("n", [1, 2])
        def test_fresh(xenctrl_api, n):
            assert xenctrl_api.domain_create() == 1  # first id after dom0 every time
        """,
    )
    result.assert_outcomes(passed=2)


# -- the presets, used directly --------------------------------------------------------------


@pytest.mark.xen_host("four-nodes-1tib")
def test_four_nodes_1tib_preset_boots(xenctrl_api: Xenctrl) -> None:
    """4 x 262144 MiB = 1 TiB = 4 x 67108864 = 268435456 pages; not free: MFN 0 and dom0's
    structure and shared info (node 0), 4 pages of heap metadata on each other node."""
    info = xenctrl_api.physinfo()
    free = 268435456 - 1 - 2 - 3 * 4
    assert (info.nr_nodes, info.total_pages, info.free_pages) == (4, 268435456, free)
    node = 262144 << 20  # bytes
    assert xenctrl_api.numainfo().nodes == [
        NodeMemory(node, node - 3 * 4096),
        NodeMemory(node, node - 4 * 4096),
        NodeMemory(node, node - 4 * 4096),
        NodeMemory(node, node - 4 * 4096),
    ]


@pytest.mark.xen_host("one-node")
def test_one_node_preset_boots(xenctrl_api: Xenctrl) -> None:
    info = xenctrl_api.physinfo()
    assert (info.nr_nodes, info.total_pages, info.free_pages) == (1, 2097152, 2097152 - 1 - 2)
