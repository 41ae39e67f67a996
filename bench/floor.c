/*
 * The floor of the VF MAC benchmark: what the kernel itself costs to program VF MACs.
 *
 * Pre-encodes batched RTM_SETLINK requests (many IFLA_VF_INFO / IFLA_VF_MAC in one
 * IFLA_VFINFO_LIST per message, each list under the 16-bit nested-attribute limit), then sends
 * them and reads one ACK per message. No validation, no per-VF bookkeeping, no retries: nothing
 * a real tool could do with less.
 *
 * Used two ways:
 *  - as a shared library through ctypes (bench/bench_vfset.py compiles it with
 *    gcc -O2 -shared -fPIC): floor_new / floor_add / floor_send / floor_free, so that only
 *    floor_send (send + ACKs) is timed; floor_getlink is the read floor: one RTM_GETLINK of a
 *    link (or a dump of every link) with the VF lists pyvfmac asks for, the reply received
 *    whole and not parsed;
 *  - as a program (gcc -O2 -DFLOOR_MAIN -o floor floor.c):
 *      floor IFINDEX:NVFS:AA:BB:CC:DD [...]
 *    programs VF v of each PF with MAC AA:BB:CC:DD:(v >> 8):(v & 0xff) and prints
 *    "messages M vfs N encode_us E send_us S".
 *
 * Every function returns 0 or -errno; nothing is printed except by main().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NEST_MAX 65535u
#define VF_INFO_LEN (NLA_HDRLEN + NLA_HDRLEN + sizeof(struct ifla_vf_mac))
#define MSG_HEAD (NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct ifinfomsg)) + NLA_HDRLEN)
#define VFS_PER_MSG ((NEST_MAX - NLA_HDRLEN) / VF_INFO_LEN)

struct floor_msg {
	uint8_t *buf;
	size_t len;
};

struct floor {
	int fd;
	uint32_t seq;
	struct floor_msg *msgs;
	size_t nmsgs;
	size_t cap;
	size_t vfs;
	uint8_t *rx;     /* floor_getlink's receive buffer, grown to the largest datagram */
	size_t rx_cap;
};

static int open_rtnl(void)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	int one = 1;
	int rcvbuf = 64 << 20; /* as pyvfmac's socket: a dump of thousands of VFs queues MBs */
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);

	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

struct floor *floor_new(void)
{
	struct floor *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->fd = open_rtnl();
	if (f->fd < 0) {
		free(f);
		return NULL;
	}
	return f;
}

void floor_free(struct floor *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->nmsgs; i++)
		free(f->msgs[i].buf);
	free(f->msgs);
	free(f->rx);
	close(f->fd);
	free(f);
}

static int push_msg(struct floor *f, uint8_t *buf, size_t len)
{
	if (f->nmsgs == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 16;
		struct floor_msg *m = realloc(f->msgs, cap * sizeof(*m));

		if (!m)
			return -ENOMEM;
		f->msgs = m;
		f->cap = cap;
	}
	f->msgs[f->nmsgs].buf = buf;
	f->msgs[f->nmsgs].len = len;
	f->nmsgs++;
	return 0;
}

static void put_vf(uint8_t *p, uint32_t vf, const uint8_t prefix[4])
{
	struct nlattr *info = (struct nlattr *)p;
	struct nlattr *mac_attr = (struct nlattr *)(p + NLA_HDRLEN);
	struct ifla_vf_mac mac = { .vf = vf };

	info->nla_type = IFLA_VF_INFO; /* no NLA_F_NESTED, as iproute2 and pyvfmac */
	info->nla_len = VF_INFO_LEN;
	mac_attr->nla_type = IFLA_VF_MAC;
	mac_attr->nla_len = NLA_HDRLEN + sizeof(mac);
	memcpy(mac.mac, prefix, 4);
	mac.mac[4] = (uint8_t)(vf >> 8);
	mac.mac[5] = (uint8_t)vf;
	memcpy(p + 2 * NLA_HDRLEN, &mac, sizeof(mac));
}

/* One RTM_SETLINK for VFs first..first+count-1 of ifindex. */
static int encode_msg(struct floor *f, int ifindex, uint32_t first, uint32_t count,
		      const uint8_t prefix[4])
{
	size_t len = MSG_HEAD + (size_t)count * VF_INFO_LEN;
	uint8_t *buf = calloc(1, len);
	struct nlmsghdr *nh = (struct nlmsghdr *)buf;
	struct ifinfomsg *ifi = (struct ifinfomsg *)(buf + NLMSG_HDRLEN);
	struct nlattr *list = (struct nlattr *)(buf + MSG_HEAD - NLA_HDRLEN);
	int err;

	if (!buf)
		return -ENOMEM;
	nh->nlmsg_len = (uint32_t)len;
	nh->nlmsg_type = RTM_SETLINK;
	nh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	nh->nlmsg_seq = ++f->seq;
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	list->nla_type = IFLA_VFINFO_LIST;
	list->nla_len = (uint16_t)(NLA_HDRLEN + count * VF_INFO_LEN);
	for (uint32_t i = 0; i < count; i++)
		put_vf(buf + MSG_HEAD + (size_t)i * VF_INFO_LEN, first + i, prefix);
	err = push_msg(f, buf, len);
	if (err)
		free(buf);
	return err;
}

/* Queue MACs prefix:(v>>8):(v&0xff) for VFs 0..nvfs-1 of ifindex. */
int floor_add(struct floor *f, int ifindex, uint32_t nvfs, const uint8_t *prefix)
{
	for (uint32_t first = 0; first < nvfs; first += VFS_PER_MSG) {
		uint32_t count = nvfs - first < VFS_PER_MSG ? nvfs - first : VFS_PER_MSG;
		int err = encode_msg(f, ifindex, first, count, prefix);

		if (err)
			return err;
	}
	f->vfs += nvfs;
	return 0;
}

size_t floor_messages(const struct floor *f)
{
	return f->nmsgs;
}

/* Message i as encoded (for comparing with pyvfmac's encoder); NULL past the end. */
const uint8_t *floor_message(const struct floor *f, size_t i, size_t *len)
{
	if (i >= f->nmsgs)
		return NULL;
	*len = f->msgs[i].len;
	return f->msgs[i].buf;
}

/* Read one ACK; its error code (0 or -errno), or -errno of recv. */
static int read_ack(int fd)
{
	union {
		struct nlmsghdr nh;
		uint8_t raw[8192];
	} u;
	ssize_t n = recv(fd, &u, sizeof(u), 0);
	struct nlmsgerr *e = NLMSG_DATA(&u.nh);

	if (n < 0)
		return -errno;
	if ((size_t)n < NLMSG_HDRLEN + sizeof(*e) || u.nh.nlmsg_type != NLMSG_ERROR)
		return -EBADMSG;
	return e->error;
}

/* Send every queued message (one send each) and read one ACK per message; 0 or the first error. */
int floor_send(struct floor *f)
{
	int first_err = 0;

	for (size_t i = 0; i < f->nmsgs; i++) {
		if (send(f->fd, f->msgs[i].buf, f->msgs[i].len, 0) < 0)
			return -errno;
	}
	for (size_t i = 0; i < f->nmsgs; i++) {
		int err = read_ack(f->fd);

		if (err && !first_err)
			first_err = err;
	}
	return first_err;
}

/* Receive one datagram whole into f->rx (sized first, as pyvfmac does: a PF with 4096 VFs
 * answers in one message of about 800 KB). Its length, or -errno. */
static long recv_whole(struct floor *f)
{
	uint8_t probe[4];
	ssize_t n = recv(f->fd, probe, sizeof(probe), MSG_PEEK | MSG_TRUNC);

	if (n < 0)
		return -errno;
	if ((size_t)n > f->rx_cap) {
		uint8_t *p = realloc(f->rx, (size_t)n);

		if (!p)
			return -ENOMEM;
		f->rx = p;
		f->rx_cap = (size_t)n;
	}
	n = recv(f->fd, f->rx, f->rx_cap, 0);
	return n < 0 ? -errno : (long)n;
}

/*
 * The read floor: one RTM_GETLINK with IFLA_EXT_MASK RTEXT_FILTER_VF | RTEXT_FILTER_SKIP_STATS
 * (the request pyvfmac sends), ifindex > 0 for that link, 0 for a dump of every link; the
 * reply received to its end (the one message, or up to NLMSG_DONE) and not parsed. Returns
 * the bytes received, or -errno (the kernel's error included).
 */
long floor_getlink(struct floor *f, int ifindex)
{
	struct {
		struct nlmsghdr nh;
		struct ifinfomsg ifi;
		struct nlattr mask_attr;
		uint32_t mask;
	} req = {
		.nh = { .nlmsg_len = sizeof(req), .nlmsg_type = RTM_GETLINK,
			.nlmsg_flags = NLM_F_REQUEST | (ifindex > 0 ? 0 : NLM_F_DUMP),
			.nlmsg_seq = ++f->seq },
		.ifi = { .ifi_family = AF_UNSPEC, .ifi_index = ifindex > 0 ? ifindex : 0 },
		.mask_attr = { .nla_len = NLA_HDRLEN + sizeof(uint32_t), .nla_type = IFLA_EXT_MASK },
		.mask = RTEXT_FILTER_VF | RTEXT_FILTER_SKIP_STATS,
	};
	long total = 0;

	if (send(f->fd, &req, sizeof(req), 0) < 0)
		return -errno;
	for (;;) {
		long n = recv_whole(f);
		struct nlmsghdr *h = (struct nlmsghdr *)f->rx;
		size_t left;

		if (n < 0)
			return n;
		total += n;
		for (left = (size_t)n; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
			if (h->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(h);

				return e->error ? e->error : -EBADMSG;
			}
			if (h->nlmsg_type == NLMSG_DONE || ifindex > 0)
				return total;
		}
	}
}

#ifdef FLOOR_MAIN
#include <stdio.h>
#include <time.h>

static long long now_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		return -1;
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int parse_spec(const char *s, int *ifindex, uint32_t *nvfs, uint8_t prefix[4])
{
	unsigned int idx, n, p[4];

	if (sscanf(s, "%u:%u:%x:%x:%x:%x", &idx, &n, &p[0], &p[1], &p[2], &p[3]) != 6)
		return -EINVAL;
	for (int i = 0; i < 4; i++) {
		if (p[i] > 0xff)
			return -EINVAL;
		prefix[i] = (uint8_t)p[i];
	}
	*ifindex = (int)idx;
	*nvfs = n;
	return 0;
}

int main(int argc, char **argv)
{
	struct floor *f;
	long long t0, t1, t2;
	int err = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s IFINDEX:NVFS:AA:BB:CC:DD ...\n", argv[0]);
		return 2;
	}
	f = floor_new();
	if (!f) {
		perror("floor: rtnetlink socket");
		return 1;
	}
	t0 = now_ns();
	for (int i = 1; i < argc && !err; i++) {
		int ifindex;
		uint32_t nvfs;
		uint8_t prefix[4];

		err = parse_spec(argv[i], &ifindex, &nvfs, prefix);
		if (err)
			fprintf(stderr, "floor: bad spec %s: want IFINDEX:NVFS:AA:BB:CC:DD\n", argv[i]);
		else
			err = floor_add(f, ifindex, nvfs, prefix);
	}
	t1 = now_ns();
	if (!err)
		err = floor_send(f);
	t2 = now_ns();
	if (err)
		fprintf(stderr, "floor: %s\n", strerror(-err));
	else
		printf("messages %zu vfs %zu encode_us %lld send_us %lld\n", f->nmsgs, f->vfs,
		       (t1 - t0) / 1000, (t2 - t1) / 1000);
	floor_free(f);
	return err ? 1 : 0;
}
#endif
