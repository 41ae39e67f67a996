/* The sysfs walker: one pass over <root>/bus/pci/devices, one directory fd per function. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vfm_sysfs_internal.h"

#define DEVICES_DIR "bus/pci/devices"
#define MAX_VFS 65535u /* TotalVFs is a 16-bit register */

#define MAX_THREADS 8
#define FUNCS_PER_THREAD 256 /* fewer functions than this per thread: not worth a thread */

/* One reader of a range of functions: its own netdev / virtfn arrays (in part), merged after. */
struct scan {
	struct vfm_topo part;        /* only netdevs / virtfns are used */
	struct vfm_topo *t;          /* = &part */
	size_t cap_netdevs, cap_virtfns;
	struct vfm_pci_func *funcs;  /* this reader's functions: funcs[0 .. count) */
	size_t count;
	int busfd;
	int err;
	char errpath[256];
};

/* Make room for one more element of size `size` in *arr (capacity *cap, n used). */
static int grow(void *arr, size_t *cap, size_t n, size_t size)
{
	void **p = arr;
	size_t ncap;
	void *np;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 64;
	if (ncap > SIZE_MAX / size)
		return -ENOMEM;
	np = realloc(*p, ncap * size);
	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = ncap;
	return 0;
}

static int fail_path(char *buf, size_t len, int err, const char *dev, const char *file)
{
	if (buf && len)
		snprintf(buf, len, "%s%s%s%s%s", DEVICES_DIR, dev ? "/" : "", dev ? dev : "",
			 file ? "/" : "", file ? file : "");
	return err;
}

static int fail(struct scan *sc, int err, const char *dev, const char *file)
{
	return fail_path(sc->errpath, sizeof(sc->errpath), err, dev, file);
}

/* ---- one attribute of one function ---- */

static int read_driver(int devfd, struct vfm_pci_func *f)
{
	int err = vfm_sysfs_link_base(devfd, "driver", f->driver, sizeof(f->driver));

	if (err == -ENOENT)
		return 0;
	if (err == -ENAMETOOLONG || err == -EINVAL) {
		f->driver[0] = '\0';
		f->flags |= VFM_FN_BAD_DRIVER;
		return 0;
	}
	return err;
}

static int read_iommu(int devfd, struct vfm_pci_func *f)
{
	char base[16];
	uint32_t group;
	int err = vfm_sysfs_link_base(devfd, "iommu_group", base, sizeof(base));

	if (err == -ENOENT)
		return 0;
	if (err == 0 && vfm_sysfs_parse_dec(base, INT32_MAX, &group) == 0) {
		f->iommu_group = (int32_t)group;
		return 0;
	}
	if (err == 0 || err == -ENAMETOOLONG || err == -EINVAL) {
		f->flags |= VFM_FN_BAD_IOMMU;
		return 0;
	}
	return err;
}

static int read_physfn(int devfd, struct vfm_pci_func *f)
{
	char base[VFM_PCI_NAME_LEN];
	int err = vfm_sysfs_link_base(devfd, "physfn", base, sizeof(base));

	if (err == -ENOENT)
		return 0;
	if (err == 0 && vfm_pci_addr_parse(base, &f->physfn) == 0) {
		f->flags |= VFM_FN_VF;
		return 0;
	}
	if (err == 0 || err == -ENAMETOOLONG || err == -EINVAL) {
		f->flags |= VFM_FN_BAD_PHYSFN;
		return 0;
	}
	return err;
}

/* A decimal attribute: 0 and *out set, 1 when malformed, -errno. */
static int read_count(int devfd, const char *name, int32_t *out)
{
	char buf[32];
	uint32_t v;
	int err = vfm_sysfs_read(devfd, name, buf, sizeof(buf));

	if (err == -EOVERFLOW)
		return 1;
	if (err < 0)
		return err;
	if (vfm_sysfs_parse_dec(buf, MAX_VFS, &v) < 0)
		return 1;
	*out = (int32_t)v;
	return 0;
}

static int read_sriov(int devfd, struct vfm_pci_func *f)
{
	int err = read_count(devfd, "sriov_totalvfs", &f->totalvfs);

	if (err == -ENOENT)
		return 0;
	if (err < 0)
		return err;
	f->flags |= VFM_FN_PF | (err ? VFM_FN_BAD_SRIOV : 0);
	if (err)
		f->totalvfs = 0;
	err = read_count(devfd, "sriov_numvfs", &f->numvfs);
	if (err == 1 || err == -ENOENT)
		f->flags |= VFM_FN_BAD_SRIOV;
	return err == 1 || err == -ENOENT ? 0 : err;
}

static int read_id(int devfd, const char *name, uint32_t *out)
{
	char buf[32];
	int err = vfm_sysfs_read(devfd, name, buf, sizeof(buf));

	if (err == -EOVERFLOW || (err >= 0 && vfm_sysfs_parse_hex(buf, out) < 0))
		return -EINVAL;
	return err < 0 ? err : 0;
}

/* ---- lists: netdev names, virtfn links ---- */

static int add_netdev(struct scan *sc, struct vfm_pci_func *f, const char *name)
{
	struct vfm_topo *t = sc->t;
	size_t len = strlen(name);
	int err;

	if (len >= VFM_IFNAME_LEN) {
		f->flags |= VFM_FN_BAD_NETDEV;
		return 0;
	}
	err = grow(&t->netdevs, &sc->cap_netdevs, t->n_netdevs, sizeof(*t->netdevs));
	if (err < 0)
		return err;
	memcpy(t->netdevs[t->n_netdevs++].name, name, len + 1);
	f->netdev_count++;
	return 0;
}

/* The entries of <dev>/<sub>: -ENOENT when there is no such directory. */
static int read_netdevs(struct scan *sc, int devfd, const char *sub, struct vfm_pci_func *f)
{
	struct vfm_dir d;
	const char *name;
	int err = vfm_dir_open(&d, devfd, sub);

	while (err == 0 && (err = vfm_dir_next(&d, &name)) == 1)
		err = add_netdev(sc, f, name);
	vfm_dir_close(&d);
	return err;
}

/* "virtfnN": N decimal without leading zeros, below MAX_VFS. */
static int virtfn_index(const char *name, uint32_t *out)
{
	const char *num;

	if (strncmp(name, "virtfn", 6) != 0)
		return -EINVAL;
	num = name + 6;
	if (num[0] == '0' && num[1] != '\0')
		return -EINVAL;
	return vfm_sysfs_parse_dec(num, MAX_VFS - 1, out) < 0 || strchr(num, '\n') ? -EINVAL : 0;
}

static int add_virtfn(struct scan *sc, int devfd, struct vfm_pci_func *f, const char *name)
{
	struct vfm_topo *t = sc->t;
	struct vfm_virtfn v = { .func = -1, .state = VFM_VIRTFN_MISSING };
	char base[VFM_PCI_NAME_LEN];
	int err;

	if (virtfn_index(name, &v.index) < 0) {
		f->flags |= VFM_FN_BAD_VIRTFN;
		return 0;
	}
	err = vfm_sysfs_link_base(devfd, name, base, sizeof(base));
	if (err == 0)
		err = vfm_pci_addr_parse(base, &v.addr);
	if (err == -ENOENT)
		return 0; /* the VF went away between the listing and the readlink */
	if (err == -EINVAL || err == -ENAMETOOLONG) {
		f->flags |= VFM_FN_BAD_VIRTFN;
		return 0;
	}
	if (err < 0)
		return err;
	err = grow(&t->virtfns, &sc->cap_virtfns, t->n_virtfns, sizeof(*t->virtfns));
	if (err < 0)
		return err;
	t->virtfns[t->n_virtfns++] = v;
	f->virtfn_count++;
	return 0;
}

/* A virtio-net function holds its netdev one level down: <dev>/virtioN/net/<name>. */
static int add_virtio_netdevs(struct scan *sc, int devfd, struct vfm_pci_func *f,
			      const char *name)
{
	char sub[VFM_PCI_NAME_LEN + 8];
	int err;

	if (strncmp(name, "virtio", 6) != 0 || strlen(name) >= VFM_PCI_NAME_LEN)
		return 0;
	snprintf(sub, sizeof(sub), "%s/net", name);
	err = read_netdevs(sc, devfd, sub, f);
	return err == -ENOENT || err == -ENOTDIR ? 0 : err;
}

/* A PF's virtfnN links, or a virtio function's netdevs: one listing of the device directory. */
static int read_children(struct scan *sc, int devfd, struct vfm_pci_func *f, int virtio)
{
	struct vfm_dir d;
	const char *name;
	int err = vfm_dir_open(&d, devfd, ".");

	while (err == 0 && (err = vfm_dir_next(&d, &name)) == 1) {
		err = 0;
		if (!virtio && strncmp(name, "virtfn", 6) == 0)
			err = add_virtfn(sc, devfd, f, name);
		else if (virtio)
			err = add_virtio_netdevs(sc, devfd, f, name);
	}
	vfm_dir_close(&d);
	return err;
}

/* ---- one function ---- */

/* Everything but the ids: each step leaves a missing attribute as "none". A VF cannot be a PF
 * (no SR-IOV capability in a VF), so VFs skip the sriov_totalvfs lookup. */
static int read_optional(struct scan *sc, int devfd, struct vfm_pci_func *f, const char **file)
{
	int err;

	if ((err = read_physfn(devfd, f)) < 0)
		*file = "physfn";
	else if ((err = read_iommu(devfd, f)) < 0)
		*file = "iommu_group";
	else if (!(f->flags & VFM_FN_VF) && (err = read_sriov(devfd, f)) < 0)
		*file = "sriov_totalvfs";
	else if ((err = read_netdevs(sc, devfd, "net", f)) < 0 && err != -ENOENT &&
		 err != -ENOTDIR)
		*file = "net";
	else if ((f->flags & VFM_FN_PF) && (err = read_children(sc, devfd, f, 0)) < 0)
		*file = NULL;
	else
		err = 0;
	return err;
}

/* Fallback when there is no usable uevent: the vendor / device / class files, the driver link. */
static int read_id_files(int devfd, struct vfm_pci_func *f, const char **file)
{
	int err;

	if ((err = read_driver(devfd, f)) < 0)
		*file = "driver";
	else if ((err = read_id(devfd, "vendor", &f->vendor)) < 0)
		*file = "vendor";
	else if ((err = read_id(devfd, "device", &f->device)) < 0)
		*file = "device";
	else if ((err = read_id(devfd, "class", &f->class_code)) < 0)
		*file = "class";
	if (err == -EINVAL) {
		f->flags |= VFM_FN_BAD_IDS;
		err = 0;
	}
	return err;
}

static void set_driver(struct vfm_pci_func *f, const struct vfm_uevent *u)
{
	if (!u->driver)
		return;
	if (u->driver_len == 0 || u->driver_len >= sizeof(f->driver)) {
		f->flags |= VFM_FN_BAD_DRIVER;
		return;
	}
	memcpy(f->driver, u->driver, u->driver_len + 1);
}

/* The ids and the driver come last, from one read of uevent (PCI_ID, PCI_CLASS, DRIVER: what
 * the vendor / device / class files and the driver link show, in one file instead of four).
 * Every device has them, so a device that went away while its optional attributes were read
 * (which then looked absent) is caught here. */
static int read_ids(int devfd, struct vfm_pci_func *f, const char **file)
{
	char buf[4096];
	struct vfm_uevent u;
	int err = vfm_sysfs_read(devfd, "uevent", buf, sizeof(buf));

	if (err >= 0) {
		vfm_sysfs_parse_uevent(buf, &u);
		if (u.has_id && u.has_class && (!u.slot || strcmp(u.slot, f->name) == 0)) {
			f->vendor = u.vendor;
			f->device = u.device;
			f->class_code = u.class_code;
			set_driver(f, &u);
			return 0;
		}
	} else if (err != -ENOENT && err != -EOVERFLOW) {
		*file = "uevent";
		return err;
	}
	return read_id_files(devfd, f, file);
}

/* A virtio-net function's netdev is <dev>/virtioN/net/<name>, not <dev>/net/<name>. */
static int read_virtio(struct scan *sc, int devfd, struct vfm_pci_func *f)
{
	if (f->netdev_count || strcmp(f->driver, "virtio-pci") != 0)
		return 0;
	return read_children(sc, devfd, f, 1);
}

static void mark_vanished(struct vfm_topo *t, struct vfm_pci_func *f)
{
	f->flags = VFM_FN_VANISHED;
	t->n_netdevs = f->netdev_first;
	t->n_virtfns = f->virtfn_first;
	f->netdev_count = f->virtfn_count = 0;
	f->driver[0] = '\0';
	f->iommu_group = f->totalvfs = f->numvfs = -1;
}

/* After reading: is bus/pci/devices/<name> still the directory that was read? A device removed
 * (or removed and recreated) meanwhile may have been read half: it counts as vanished. */
static int still_there(int busfd, int devfd, const char *name)
{
	struct stat read_dir, now;

	if (fstat(devfd, &read_dir) < 0)
		return -errno;
	if (fstatat(busfd, name, &now, 0) < 0)
		return -errno;
	if (read_dir.st_nlink == 0 || read_dir.st_ino != now.st_ino || read_dir.st_dev != now.st_dev)
		return -ENOENT;
	return 0;
}

static int read_func(struct scan *sc, int busfd, struct vfm_pci_func *f)
{
	const char *file = NULL;
	int devfd, err;

	f->netdev_first = (uint32_t)sc->t->n_netdevs;
	f->virtfn_first = (uint32_t)sc->t->n_virtfns;
	devfd = openat(busfd, f->name, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (devfd < 0) {
		err = -errno;
		if (!vfm_sysfs_gone(err) && err != -ENOTDIR)
			return fail(sc, err, f->name, NULL);
		mark_vanished(sc->t, f);
		return 0;
	}
	err = read_optional(sc, devfd, f, &file);
	if (err == 0)
		err = read_ids(devfd, f, &file);
	if (err == 0 && (err = read_virtio(sc, devfd, f)) < 0)
		file = NULL;
	if (err == 0 && (err = still_there(busfd, devfd, f->name)) < 0)
		file = NULL;
	close(devfd);
	if (vfm_sysfs_gone(err))
		mark_vanished(sc->t, f);
	else if (err < 0)
		return fail(sc, err, f->name, file);
	return 0;
}

static void init_func(struct vfm_pci_func *f, const char *name)
{
	size_t len = strlen(name);

	memset(f, 0, sizeof(*f));
	f->iommu_group = f->totalvfs = f->numvfs = f->pf = f->vf_index = -1;
	if (len < sizeof(f->name))
		memcpy(f->name, name, len + 1);
	if (len >= sizeof(f->name) || vfm_pci_addr_parse(f->name, &f->addr) < 0)
		f->flags = VFM_FN_BADNAME;
}

/* ---- the whole scan: list, read in parallel, merge, link ---- */

static int add_entry(struct vfm_topo *t, size_t *cap, const char *name)
{
	int err = grow(&t->funcs, cap, t->n_funcs, sizeof(*t->funcs));

	if (err < 0)
		return err;
	init_func(&t->funcs[t->n_funcs++], name);
	return 0;
}

/* Every entry of bus/pci/devices into t->funcs (names and addresses only). */
static int list_devices(struct vfm_topo *t, struct vfm_dir *d)
{
	size_t cap = 0;
	const char *name;
	int err;

	while ((err = vfm_dir_next(d, &name)) == 1)
		if ((err = add_entry(t, &cap, name)) < 0)
			break;
	return err;
}

static void *read_range(void *arg)
{
	struct scan *sc = arg;
	size_t i;

	for (i = 0; i < sc->count && sc->err == 0; i++)
		if (!(sc->funcs[i].flags & VFM_FN_BADNAME))
			sc->err = read_func(sc, sc->busfd, &sc->funcs[i]);
	return NULL;
}

/* CPUs this thread may run on (cpuset / taskset aware), at least 1. */
static size_t usable_cpus(void)
{
	cpu_set_t set;
	long online;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return (size_t)CPU_COUNT(&set);
	online = sysconf(_SC_NPROCESSORS_ONLN);
	return online > 0 ? (size_t)online : 1;
}

static size_t pick_threads(uint32_t threads, size_t n)
{
	size_t k = threads ? threads : usable_cpus();

	if (!threads && k > n / FUNCS_PER_THREAD)
		k = n / FUNCS_PER_THREAD;
	if (k > MAX_THREADS)
		k = MAX_THREADS;
	if (k > n)
		k = n;
	return k ? k : 1;
}

/* Split t->funcs into k ranges and read them, k - 1 in new threads (inline when a thread cannot
 * be started). */
static void read_all(struct vfm_topo *t, int busfd, struct scan *sc, size_t k)
{
	pthread_t tid[MAX_THREADS];
	int started[MAX_THREADS] = { 0 };
	size_t i, per = t->n_funcs / k, extra = t->n_funcs % k, at = 0;
	int err;

	for (i = 0; i < k; i++) {
		sc[i].t = &sc[i].part;
		sc[i].funcs = t->funcs + at;
		sc[i].count = per + (i < extra);
		sc[i].busfd = busfd;
		at += sc[i].count;
	}
	for (i = 1; i < k; i++)
		started[i] = pthread_create(&tid[i], NULL, read_range, &sc[i]) == 0;
	read_range(&sc[0]);
	for (i = 1; i < k; i++) {
		if (!started[i])
			read_range(&sc[i]);
		else if ((err = pthread_join(tid[i], NULL)) != 0 && sc[i].err == 0)
			sc[i].err = -err;
	}
}

/* Append each reader's netdevs / virtfns to t's and move its functions' indexes along. */
static int merge(struct vfm_topo *t, struct scan *sc, size_t k)
{
	size_t i, j, nn = 0, nv = 0;

	for (i = 0; i < k; i++) {
		nn += sc[i].part.n_netdevs;
		nv += sc[i].part.n_virtfns;
	}
	if (nn > UINT32_MAX || nv > UINT32_MAX)
		return -EOVERFLOW;
	t->netdevs = calloc(nn ? nn : 1, sizeof(*t->netdevs));
	t->virtfns = calloc(nv ? nv : 1, sizeof(*t->virtfns));
	if (!t->netdevs || !t->virtfns)
		return -ENOMEM;
	for (i = 0; i < k; i++) {
		struct scan *s = &sc[i];

		for (j = 0; j < s->count; j++) {
			s->funcs[j].netdev_first += (uint32_t)t->n_netdevs;
			s->funcs[j].virtfn_first += (uint32_t)t->n_virtfns;
		}
		if (s->part.n_netdevs)
			memcpy(t->netdevs + t->n_netdevs, s->part.netdevs,
			       s->part.n_netdevs * sizeof(*t->netdevs));
		if (s->part.n_virtfns)
			memcpy(t->virtfns + t->n_virtfns, s->part.virtfns,
			       s->part.n_virtfns * sizeof(*t->virtfns));
		t->n_netdevs += s->part.n_netdevs;
		t->n_virtfns += s->part.n_virtfns;
	}
	return 0;
}

/* The first reader's error, in scan order; its path into errpath. */
static int first_error(struct scan *sc, size_t k, char *errpath, size_t errlen)
{
	size_t i;

	for (i = 0; i < k; i++) {
		if (sc[i].err < 0) {
			if (errpath && errlen)
				snprintf(errpath, errlen, "%s", sc[i].errpath);
			return sc[i].err;
		}
	}
	return 0;
}

static int scan_devices(struct vfm_topo *t, int rootfd, uint32_t threads, char *errpath,
			size_t errlen)
{
	struct scan sc[MAX_THREADS];
	struct vfm_dir d;
	size_t i, k;
	int err = vfm_dir_open(&d, rootfd, DEVICES_DIR);

	if (err == 0)
		err = list_devices(t, &d);
	if (err < 0) {
		vfm_dir_close(&d);
		return fail_path(errpath, errlen, err, NULL, NULL);
	}
	k = pick_threads(threads, t->n_funcs);
	memset(sc, 0, sizeof(sc));
	read_all(t, d.fd, sc, k);
	vfm_dir_close(&d);
	err = first_error(sc, k, errpath, errlen);
	if (err == 0)
		err = merge(t, sc, k);
	for (i = 0; i < k; i++) {
		free(sc[i].part.netdevs);
		free(sc[i].part.virtfns);
	}
	return err;
}

int vfm_topo_scan(const char *root, uint32_t threads, struct vfm_topo **out, char *errpath,
		  size_t errlen)
{
	struct vfm_topo *t;
	int rootfd, err;

	if (errpath && errlen)
		errpath[0] = '\0';
	if (!root || !root[0])
		root = "/sys";
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		err = -errno;
		if (errpath && errlen)
			snprintf(errpath, errlen, ".");
	} else {
		err = scan_devices(t, rootfd, threads, errpath, errlen);
		close(rootfd);
	}
	if (err < 0) {
		vfm_topo_free(t);
		return err;
	}
	vfm_topo_link(t);
	*out = t;
	return 0;
}

void vfm_topo_free(struct vfm_topo *t)
{
	if (!t)
		return;
	free(t->funcs);
	free(t->netdevs);
	free(t->virtfns);
	free(t);
}
