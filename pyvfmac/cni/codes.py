"""CNI error codes: the spec's (0-99) and vfmac-cni's own (100 and up)."""

INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
BAD_ENV = 4
IO_FAILURE = 5
DECODE = 6
INVALID_CONFIG = 7
TRY_AGAIN = 11
NOT_AVAILABLE = 50  # STATUS

VF_IN_USE = 100  # held by another pod, by `vfmac attach` or by a pool
NOT_A_VF = 101  # deviceID is a PF or another PCI function that is not a VF
NOT_NETWORK = 102  # deviceID is not a network function
NO_DEVICE = 103  # deviceID is no PCI device, or the VF's PF has no netdev
KERNEL = 104  # the kernel refused a change (the message names device, VF and errno)
MISMATCH = 105  # CHECK: the VF is not as ADD left it (the message says what differs)
RESTORE_INCOMPLETE = 106  # DEL / GC: the VF is not fully back; its record is kept
STATE = 107  # the state store failed
IPAM = 108  # the IPAM delegate could not be run or sent no usable result
MAC_IN_USE = 109  # ADD: another attachment, pod, netdev or VF has the MAC (allowDuplicateMac)
