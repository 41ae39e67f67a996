/* Internals of the sysfs walker shared by csrc/vfm_sysfs*.c; not part of the API. */
#ifndef VFM_SYSFS_INTERNAL_H
#define VFM_SYSFS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "vfm_sysfs.h"

/* ENOENT / ENODEV: the file or the whole device went away. */
int vfm_sysfs_gone(int err);

/* Read a small attribute file once into buf (NUL-terminated). Returns its length, -EOVERFLOW
 * when it does not fit or is a directory, -errno otherwise. */
int vfm_sysfs_read(int dirfd, const char *name, char *buf, size_t len);

/* Attribute contents: "0x8086\n" (hex, "0x" required) / "7\n" (decimal, no sign). -EINVAL when
 * the text is anything else or out of range. */
int vfm_sysfs_parse_hex(const char *s, uint32_t *out);
int vfm_sysfs_parse_dec(const char *s, uint32_t max, uint32_t *out);

/* readlinkat(dirfd, name) and copy the target's last component into buf. -ENAMETOOLONG when the
 * target or the component does not fit, -EINVAL when the component is empty, ".", "..", or the
 * link is not a link; -errno from readlinkat otherwise. */
int vfm_sysfs_link_base(int dirfd, const char *name, char *buf, size_t len);

/* What a PCI device's uevent file says (the kernel's pci_uevent / dev_uevent): PCI_ID=8086:10CA,
 * PCI_CLASS=20000, DRIVER=igbvf, PCI_SLOT_NAME=0000:06:10.0. Pointers point into the parsed
 * buffer; lengths exclude the NUL. */
struct vfm_uevent {
	uint32_t vendor, device, class_code;
	int has_id, has_class;
	const char *driver;        /* NULL: no DRIVER line (unbound) */
	size_t driver_len;
	const char *slot;          /* NULL: no PCI_SLOT_NAME line */
};

/* Parse buf (NUL-terminated, modified: line ends become NULs). Unknown keys are skipped; a
 * PCI_ID or PCI_CLASS value that is not well-formed leaves has_id / has_class 0. */
void vfm_sysfs_parse_uevent(char *buf, struct vfm_uevent *u);

/* A directory listing with getdents64: no DIR allocation, no fcntl. */
struct vfm_dir {
	int fd;
	long pos, len;
	char buf[8192];
};

/* Open dirfd/name for listing: 0 or -errno (-ENOENT: no such directory). */
int vfm_dir_open(struct vfm_dir *d, int dirfd, const char *name);
/* The next entry other than "." and "..": 1 and *name set, 0 at the end, -errno. */
int vfm_dir_next(struct vfm_dir *d, const char **name);
void vfm_dir_close(struct vfm_dir *d);

/* Sort funcs by address, each PF's virtfns by index, then resolve PF -> VF relations. */
void vfm_topo_link(struct vfm_topo *t);

#endif
