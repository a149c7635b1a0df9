"""How a domain build fails: :class:`XenguestError`, naming the step, the guest frames,
the node and the errno, and saying how much memory was populated before it."""

from __future__ import annotations

from hypervisor_model.public.errno import errorcode


class XenguestError(Exception):
    """A failed libxenguest step, e.g. ``meminit_hvm: populating 1 GiB at gfn 0x100000 on
    node 1: EBUSY (262144 pages populated)``. The claim is always released by then."""

    def __init__(
        self,
        step: str,
        errno: int,
        what: str,
        *,
        gfn: int | None = None,
        node: int | None = None,
        populated_pages: int = 0,
        claim_refused: bool = False,
    ) -> None:
        self.step, self.errno, self.gfn, self.node = step, errno, gfn, node
        self.populated_pages = populated_pages
        self.claim_refused = claim_refused  # the hypervisor refused the build's claim
        where = f" at gfn {gfn:#x}" if gfn is not None else ""
        on = f" on node {node}" if node is not None else ""
        name = errorcode.get(errno, str(errno))
        tail = f" ({populated_pages} pages populated)" if populated_pages else ""
        super().__init__(f"{step}: {what}{where}{on}: {name}{tail}")
