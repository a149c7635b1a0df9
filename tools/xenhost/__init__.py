"""An emulated host served to other processes: the hypercall server, the privcmd bridge
that lets C programs linked against the real libxenctrl reach it, and the xenstore.

It sits beside ``xlemu`` rather than inside it: C programs and Python builders in other
processes use it without the CLI, and the CLI is one more client.
"""

__all__: list[str] = []  # its modules are the interface: server, xenstore, bridge
