"""PCI device names of ``public/physdev.h``, as XEN_SYSCTL_pcitopoinfo takes them."""

from construct import Construct, Struct

from .xen import uint8_t, uint16_t

# physdev_pci_device_t (4 bytes): segment, bus, device and function.
physdev_pci_device: Construct = Struct("seg" / uint16_t, "bus" / uint8_t, "devfn" / uint8_t)
physdev_pci_device_t: Construct = physdev_pci_device
