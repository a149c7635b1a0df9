"""Xen's public hypercall ABI (x86_64) as construct definitions.

One module per Xen public header (``xen``, ``errno``, ``domctl``, ``memory``,
``sysctl``): the numbers, flags and byte layouts that cross the hypercall
boundary, declared once from a few primitives bound in ``xen``. Field names are
Xen's, so a reader can find each layout in ``xen/include/public/``. The
NUMA-aware claim-set ABI, which is not in Xen master, lives in one marked
section of ``domctl``.
"""
