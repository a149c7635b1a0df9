"""xlemu: an ``xl``-like toolstack on a persistent emulated Xen host.

The CLI (:mod:`xlemu.cli`) is a thin click shell; everything it does lives in
:mod:`xlemu.toolstack`, which talks to the host only through xenctrl and xenguest.
"""

__all__: list[str] = []  # its modules are the interface: cli, toolstack
