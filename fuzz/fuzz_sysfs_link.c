/* A sysfs link's target (driver, iommu_group, physfn, virtfnN): the input becomes a symlink's
 * target (a private temporary directory, one link replaced each run), read back by
 * vfm_sysfs_link_base, and its last component parsed as the walker does (a PCI address, a
 * group number). Input: option byte (the result buffer: 1 .. 64 bytes), then the target. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vfm_sysfs_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int dirfd_ = -1;

static void cleanup(void)
{
	char path[64];

	if (dirfd_ < 0)
		return;
	unlinkat(dirfd_, "l", 0);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", dirfd_);
	{
		char real[PATH_MAX];
		ssize_t n = readlink(path, real, sizeof(real) - 1);

		if (n > 0) {
			real[n] = '\0';
			rmdir(real);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char target[PATH_MAX], buf[65];
	struct vfm_pci_addr a;
	size_t len, n;
	uint32_t v;
	int err;

	if (dirfd_ < 0) {
		char tmpl[] = "/tmp/fuzz-sysfs-link.XXXXXX";

		if (!mkdtemp(tmpl))
			abort();
		dirfd_ = open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		atexit(cleanup);
	}
	if (size < 2)
		return 0;
	len = (size_t)(data[0] & 63) + 1;
	n = size - 1 < sizeof(target) - 1 ? size - 1 : sizeof(target) - 1;
	memcpy(target, data + 1, n);
	target[n] = '\0';
	if (target[0] == '\0')
		return 0; /* symlink(2) refuses an empty target */
	unlinkat(dirfd_, "l", 0);
	if (symlinkat(target, dirfd_, "l") != 0)
		return 0;
	memset(buf, 'x', sizeof(buf));
	err = vfm_sysfs_link_base(dirfd_, "l", buf, len);
	if (err == 0) {
		size_t bl = strlen(buf);

		assert(bl > 0 && bl < len && !strchr(buf, '/'));
		assert(strcmp(buf, ".") != 0 && strcmp(buf, "..") != 0);
		if (vfm_pci_addr_parse(buf, &a) == 0)
			assert(a.function <= 7);
		(void)vfm_sysfs_parse_dec(buf, INT32_MAX, &v);
	} else {
		assert(err == -EINVAL || err == -ENAMETOOLONG);
	}
	/* a name that is not a link */
	err = vfm_sysfs_link_base(dirfd_, ".", buf, len);
	assert(err == -EINVAL);
	return 0;
}
