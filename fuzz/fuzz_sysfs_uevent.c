/* A PCI device's uevent file: vfm_sysfs_read (one read of the file, as the walker does; the
 * input is served from a memfd), then vfm_sysfs_parse_uevent. Input: option byte (the read
 * buffer's size: 2 .. 257 bytes, or 4096), then the file. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vfm_sysfs_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfd = -1;
static char path[64];

/* The input as a file the walker opens by name. */
int fuzz_file(const uint8_t *data, size_t size);
int fuzz_file(const uint8_t *data, size_t size)
{
	if (memfd < 0) {
		memfd = memfd_create("fuzz-sysfs", MFD_CLOEXEC);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	}
	if (ftruncate(memfd, 0) != 0 || pwrite(memfd, data, size, 0) != (ssize_t)size)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vfm_uevent u;
	size_t len;
	char *buf;
	int n;

	if (size < 1)
		return 0;
	len = data[0] == 255 ? 4096 : (size_t)data[0] + 2;
	fuzz_file(data + 1, size - 1);
	buf = malloc(len);
	n = vfm_sysfs_read(AT_FDCWD, path, buf, len);
	if (n < 0) {
		assert(n == -EOVERFLOW && size - 1 >= len);
		free(buf);
		return 0;
	}
	assert((size_t)n == size - 1 && (size_t)n < len);
	vfm_sysfs_parse_uevent(buf, &u);
	if (u.driver) {
		assert(u.driver >= buf && u.driver + u.driver_len < buf + len);
		assert(strlen(u.driver) == u.driver_len);
	}
	if (u.slot)
		assert(u.slot >= buf && u.slot + strlen(u.slot) < buf + len);
	if (u.has_id)
		assert(u.vendor <= 0xffff && u.device <= 0xffff);
	if (u.has_class)
		assert(u.class_code <= 0xffffff);
	free(buf);
	return 0;
}
