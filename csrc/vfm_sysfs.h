/* pyvfmac C core: SR-IOV topology from sysfs.
 *
 * One pass over <root>/bus/pci/devices with directory file descriptors (openat, readlinkat,
 * fdopendir): every PCI function's address, vendor / device / class, driver, IOMMU group and
 * netdev names; SR-IOV totals for PFs; physfn (VF -> PF) and virtfnN (PF -> VF, index N) links.
 * Each file is read once; VF <-> PF relations are resolved afterwards by binary search over the
 * functions sorted by address (no per-VF rescans of virtfn links).
 *
 * Conventions as in vfm_netlink.h: 0 or -errno returns, the result is owned by the library and
 * freed with vfm_topo_free, nothing here prints, exits or keeps global state. A device whose
 * directory or mandatory files disappear during the scan (ENOENT / ENODEV) is kept, flagged
 * VFM_FN_VANISHED and carries nothing else; it is never a failure of the scan.
 */
#ifndef VFM_SYSFS_H
#define VFM_SYSFS_H

#include <stddef.h>
#include <stdint.h>

#define VFM_PCI_NAME_LEN 32 /* a directory name under bus/pci/devices, NUL included */
#define VFM_IFNAME_LEN 16   /* IFNAMSIZ */
#define VFM_DRIVER_LEN 64   /* a driver name, NUL included */

/* struct vfm_pci_func.flags */
#define VFM_FN_VANISHED 0x0001u    /* gone during the scan: only name / addr are valid */
#define VFM_FN_BADNAME 0x0002u     /* the entry's name is not a PCI address: only name is valid */
#define VFM_FN_PF 0x0004u          /* has sriov_totalvfs */
#define VFM_FN_VF 0x0008u          /* has a physfn link naming a PCI address (physfn) */
#define VFM_FN_LINKED 0x0010u      /* a VF claimed by its PF's virtfnN and agreeing physfn */
#define VFM_FN_BAD_DRIVER 0x0020u  /* driver link unreadable, too long or odd: driver "" */
#define VFM_FN_BAD_IOMMU 0x0040u   /* iommu_group link not ending in a group number */
#define VFM_FN_BAD_PHYSFN 0x0080u  /* physfn link not ending in a PCI address */
#define VFM_FN_BAD_NETDEV 0x0100u  /* a net/ entry too long to be a netdev name: left out */
#define VFM_FN_BAD_VIRTFN 0x0200u  /* a virtfnN link unreadable or odd: left out */
#define VFM_FN_BAD_SRIOV 0x0400u   /* sriov_totalvfs / sriov_numvfs unreadable or not a number */
#define VFM_FN_BAD_IDS 0x0800u     /* no usable uevent and vendor / device / class not "0x<hex>" */

/* struct vfm_virtfn.state */
#define VFM_VIRTFN_OK 0        /* the VF is in funcs[func], its physfn agrees */
#define VFM_VIRTFN_MISSING 1   /* no such PCI function (gone, or never listed) */
#define VFM_VIRTFN_VANISHED 2  /* the function vanished during the scan */
#define VFM_VIRTFN_NOT_VF 3    /* the function has no physfn link */
#define VFM_VIRTFN_MISMATCH 4  /* its physfn names another PF */
#define VFM_VIRTFN_DUPLICATE 5 /* another virtfn link already claimed it */

struct vfm_pci_addr {
	uint32_t domain;
	uint32_t bus;
	uint32_t slot;
	uint32_t function;
};

struct vfm_pci_func {
	char name[VFM_PCI_NAME_LEN]; /* the entry's name, "" when too long (then VFM_FN_BADNAME) */
	struct vfm_pci_addr addr;
	uint32_t flags;              /* VFM_FN_* */
	uint32_t vendor;
	uint32_t device;
	uint32_t class_code;
	int32_t iommu_group;         /* -1: none */
	int32_t totalvfs;            /* -1: not a PF */
	int32_t numvfs;              /* -1: not a PF, or unreadable */
	struct vfm_pci_addr physfn;  /* VFM_FN_VF: the PF named by the physfn link */
	int32_t pf;                  /* VFM_FN_LINKED: index of the PF in funcs, else -1 */
	int32_t vf_index;            /* VFM_FN_LINKED: N of the PF's virtfnN, else -1 */
	uint32_t netdev_first;       /* netdev names: netdevs[netdev_first .. + netdev_count) */
	uint32_t netdev_count;
	uint32_t virtfn_first;       /* a PF's virtfn links, by index: virtfns[first .. + count) */
	uint32_t virtfn_count;
	char driver[VFM_DRIVER_LEN]; /* basename of the driver link, "" when unbound */
};

struct vfm_netdev {
	char name[VFM_IFNAME_LEN];
};

struct vfm_virtfn {
	uint32_t index;              /* N of virtfnN */
	struct vfm_pci_addr addr;    /* where the link points */
	int32_t func;                /* index in funcs, -1 when there is none */
	uint32_t state;              /* VFM_VIRTFN_* */
};

struct vfm_topo {
	size_t n_funcs;              /* sorted by address; VFM_FN_BADNAME entries last */
	struct vfm_pci_func *funcs;
	size_t n_netdevs;
	struct vfm_netdev *netdevs;
	size_t n_virtfns;
	struct vfm_virtfn *virtfns;
};

/* Scan <root>/bus/pci/devices (root NULL or "": "/sys"). The entries are listed first, then read
 * by `threads` readers (0: one per usable CPU, at most 8 and one per 256 functions), each reading a
 * contiguous range. *out is freed with vfm_topo_free. On failure returns -errno and copies the
 * path (relative to root) that failed into errpath. */
int vfm_topo_scan(const char *root, uint32_t threads, struct vfm_topo **out, char *errpath,
		  size_t errlen);
void vfm_topo_free(struct vfm_topo *t);

/* Index in t->funcs of the function at addr, or -ENOENT. O(log n). */
int vfm_topo_find(const struct vfm_topo *t, const struct vfm_pci_addr *addr);

/* Parse a PCI function name as the kernel prints it ("0000:06:02.0", lowercase, a 4-digit
 * domain or a longer one without leading zero). 0 or -EINVAL. */
int vfm_pci_addr_parse(const char *s, struct vfm_pci_addr *out);

#endif
