/* The sysfs walker's readers: one small attribute file, one link's last component, and the
 * strict parsers for what they hold. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "vfm_sysfs_internal.h"

int vfm_sysfs_gone(int err)
{
	return err == -ENOENT || err == -ENODEV;
}

/* One read(2): sysfs fills the whole attribute at once, and a short read of a regular file (a
 * fake tree) is its end. */
static ssize_t read_once(int fd, char *buf, size_t len)
{
	ssize_t n;

	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

int vfm_sysfs_read(int dirfd, const char *name, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	if (len < 2)
		return -EINVAL;
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	n = read_once(fd, buf, len);
	close(fd);
	if (n == -EISDIR)
		return -EOVERFLOW;
	if (n < 0)
		return (int)n;
	if ((size_t)n == len)
		return -EOVERFLOW; /* cannot tell it ended: no room left for the NUL */
	buf[n] = '\0';
	return (int)n;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The text ends here, or with a single "\n". */
static int at_end(const char *s)
{
	return s[0] == '\0' || (s[0] == '\n' && s[1] == '\0');
}

int vfm_sysfs_parse_hex(const char *s, uint32_t *out)
{
	uint64_t v = 0;
	int d, n = 0;

	if (s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
		return -EINVAL;
	for (s += 2; (d = hex_digit(*s)) >= 0; s++, n++) {
		v = v * 16 + (uint64_t)d;
		if (v > UINT32_MAX)
			return -EINVAL;
	}
	if (n == 0 || !at_end(s))
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

int vfm_sysfs_parse_dec(const char *s, uint32_t max, uint32_t *out)
{
	uint64_t v = 0;
	int n = 0;

	for (; *s >= '0' && *s <= '9'; s++, n++) {
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > max)
			return -EINVAL;
	}
	if (n == 0 || !at_end(s))
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* Exactly `digits` hex digits (lowercase, as the kernel prints) into *out; the rest follows. */
static const char *parse_hex_field(const char *s, int digits, uint32_t *out)
{
	uint32_t v = 0;
	int i, d;

	for (i = 0; i < digits; i++) {
		d = hex_digit(s[i]);
		if (d < 0 || (s[i] >= 'A' && s[i] <= 'F'))
			return NULL;
		v = v * 16 + (uint32_t)d;
	}
	*out = v;
	return s + digits;
}

/* Domain: 4 digits ("%04x"), or 5 to 8 without a leading zero. */
static int domain_digits(const char *s)
{
	int n = 0;

	while (n < 9 && hex_digit(s[n]) >= 0)
		n++;
	if (n < 4 || n > 8 || (n > 4 && s[0] == '0'))
		return -1;
	return n;
}

int vfm_pci_addr_parse(const char *s, struct vfm_pci_addr *out)
{
	struct vfm_pci_addr a;
	int nd = domain_digits(s);

	if (nd < 0 || !(s = parse_hex_field(s, nd, &a.domain)) || *s++ != ':')
		return -EINVAL;
	if (!(s = parse_hex_field(s, 2, &a.bus)) || *s++ != ':')
		return -EINVAL;
	if (!(s = parse_hex_field(s, 2, &a.slot)) || *s++ != '.' || a.slot > 0x1f)
		return -EINVAL;
	if (s[0] < '0' || s[0] > '7' || s[1] != '\0')
		return -EINVAL;
	a.function = (uint32_t)(s[0] - '0');
	*out = a;
	return 0;
}

int vfm_sysfs_link_base(int dirfd, const char *name, char *buf, size_t len)
{
	char target[PATH_MAX];
	const char *base;
	ssize_t n;
	size_t blen;

	n = readlinkat(dirfd, name, target, sizeof(target));
	if (n < 0)
		return -errno;
	if ((size_t)n >= sizeof(target))
		return -ENAMETOOLONG;
	target[n] = '\0';
	while (n > 0 && target[n - 1] == '/')
		target[--n] = '\0';
	base = strrchr(target, '/');
	base = base ? base + 1 : target;
	blen = strlen(base);
	if (blen == 0 || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
		return -EINVAL;
	if (blen >= len)
		return -ENAMETOOLONG;
	memcpy(buf, base, blen + 1);
	return 0;
}

/* Exactly `digits` hex digits of either case, then `end`. */
static int parse_hex_exact(const char *s, int digits, char end, uint32_t *out)
{
	uint32_t v = 0;
	int i, d;

	for (i = 0; i < digits; i++) {
		if ((d = hex_digit(s[i])) < 0)
			return -EINVAL;
		v = v * 16 + (uint32_t)d;
	}
	if (s[digits] != end)
		return -EINVAL;
	*out = v;
	return 0;
}

/* PCI_CLASS=%X: 1 to 6 hex digits. */
static int parse_class(const char *s, uint32_t *out)
{
	size_t n = strlen(s);

	if (n < 1 || n > 6)
		return -EINVAL;
	return parse_hex_exact(s, (int)n, '\0', out);
}

static void uevent_line(char *line, struct vfm_uevent *u)
{
	char *val = strchr(line, '=');

	if (!val)
		return;
	*val++ = '\0';
	if (strcmp(line, "PCI_ID") == 0)
		u->has_id = parse_hex_exact(val, 4, ':', &u->vendor) == 0 &&
			    parse_hex_exact(val + 5, 4, '\0', &u->device) == 0;
	else if (strcmp(line, "PCI_CLASS") == 0)
		u->has_class = parse_class(val, &u->class_code) == 0;
	else if (strcmp(line, "DRIVER") == 0) {
		u->driver = val;
		u->driver_len = strlen(val);
	} else if (strcmp(line, "PCI_SLOT_NAME") == 0)
		u->slot = val;
}

void vfm_sysfs_parse_uevent(char *buf, struct vfm_uevent *u)
{
	char *line = buf, *nl;

	memset(u, 0, sizeof(*u));
	while (*line) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		uevent_line(line, u);
		if (!nl)
			break;
		line = nl + 1;
	}
}

int vfm_dir_open(struct vfm_dir *d, int dirfd, const char *name)
{
	d->pos = d->len = 0;
	d->fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return d->fd < 0 ? -errno : 0;
}

int vfm_dir_next(struct vfm_dir *d, const char **name)
{
	struct dirent64 *e;
	ssize_t n;

	for (;;) {
		if (d->pos >= d->len) {
			n = getdents64(d->fd, d->buf, sizeof(d->buf));
			if (n < 0)
				return -errno;
			if (n == 0)
				return 0;
			d->pos = 0;
			d->len = (long)n;
		}
		e = (struct dirent64 *)(void *)(d->buf + d->pos);
		d->pos += e->d_reclen;
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			*name = e->d_name;
			return 1;
		}
	}
}

void vfm_dir_close(struct vfm_dir *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}
