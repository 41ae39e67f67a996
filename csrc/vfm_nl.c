/* The NETLINK_ROUTE socket: open, send, receive, ACKs and extended ACKs. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "vfm_internal.h"

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif
#ifndef NLM_F_CAPPED
#define NLM_F_CAPPED 0x100
#endif
#ifndef NLM_F_ACK_TLVS
#define NLM_F_ACK_TLVS 0x200
#endif
#ifndef NLMSGERR_ATTR_MSG
#define NLMSGERR_ATTR_MSG 1
#endif

static int sock_set_int(int fd, int level, int opt, int v)
{
	return setsockopt(fd, level, opt, &v, sizeof(v)) < 0 ? -errno : 0;
}

/* SO_*BUFFORCE needs CAP_NET_ADMIN; fall back to the capped plain option. */
static int sock_set_buf(int fd, int force_opt, int opt, uint32_t size)
{
	int v = size > INT32_MAX ? INT32_MAX : (int)size;

	if (sock_set_int(fd, SOL_SOCKET, force_opt, v) == 0)
		return 0;
	return sock_set_int(fd, SOL_SOCKET, opt, v);
}

/* A kernel that never answers must not hang a host's boot: give up after a minute. */
static int sock_set_timeout(int fd)
{
	struct timeval tv = { .tv_sec = 60, .tv_usec = 0 };

	return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ? -errno : 0;
}

static int sock_bind(struct vfm_sock *s)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	socklen_t len = sizeof(sa);

	if (bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	if (getsockname(s->fd, (struct sockaddr *)&sa, &len) < 0)
		return -errno;
	if (len != sizeof(sa) || sa.nl_family != AF_NETLINK)
		return -EINVAL;
	s->portid = sa.nl_pid;
	return 0;
}

static int sock_setup(struct vfm_sock *s, uint32_t bufsize)
{
	int err;

	err = sock_set_buf(s->fd, SO_SNDBUFFORCE, SO_SNDBUF, bufsize);
	if (err < 0)
		return err;
	err = sock_set_buf(s->fd, SO_RCVBUFFORCE, SO_RCVBUF, bufsize);
	if (err < 0)
		return err;
	err = sock_set_timeout(s->fd);
	if (err < 0)
		return err;
	/* Errors carry only the failed message's header back, not the whole batch. */
	s->cap_ack = sock_set_int(s->fd, SOL_NETLINK, NETLINK_CAP_ACK, 1) == 0;
	/* Old kernels lack extended ACKs: ignore failure. */
	(void)sock_set_int(s->fd, SOL_NETLINK, NETLINK_EXT_ACK, 1);
	return sock_bind(s);
}

int vfm_sock_open(struct vfm_sock **out, uint32_t bufsize)
{
	struct vfm_sock *s;
	int err;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (s->fd < 0) {
		err = -errno;
		free(s);
		return err;
	}
	err = sock_setup(s, bufsize ? bufsize : (1u << 20));
	if (err < 0) {
		vfm_sock_close(s);
		return err;
	}
	*out = s;
	return 0;
}

void vfm_sock_close(struct vfm_sock *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		(void)close(s->fd);
	free(s->rx);
	free(s->tx);
	free(s);
}

uint8_t *vfm_sock_tx(struct vfm_sock *s, size_t need)
{
	uint8_t *p;

	if (need <= s->tx_cap)
		return s->tx;
	p = realloc(s->tx, need);
	if (!p)
		return NULL;
	s->tx = p;
	s->tx_cap = need;
	return p;
}

int vfm_sock_send(struct vfm_sock *s, const void *buf, size_t len)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	ssize_t n;

	do {
		n = sendto(s->fd, buf, len, 0, (struct sockaddr *)&sa, sizeof(sa));
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EMSGSIZE;
}

static int rx_grow(struct vfm_sock *s, size_t need)
{
	uint8_t *p;

	if (need <= s->rx_cap)
		return 0;
	p = realloc(s->rx, need);
	if (!p)
		return -ENOMEM;
	s->rx = p;
	s->rx_cap = need;
	return 0;
}

static long recv_flags(struct vfm_sock *s, void *buf, size_t len, int flags)
{
	struct sockaddr_nl sa;
	socklen_t salen;
	ssize_t n;

	do {
		salen = sizeof(sa);
		n = recvfrom(s->fd, buf, len, flags, (struct sockaddr *)&sa, &salen);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
	if (salen != sizeof(sa) || sa.nl_pid != 0)
		return -EPROTO; /* not from the kernel */
	return (long)n;
}

long vfm_sock_recv(struct vfm_sock *s)
{
	uint8_t probe[4];
	long n;
	int err;

	/* Size the datagram first: a PF with thousands of VFs sends one of about 1 MB. */
	n = recv_flags(s, probe, sizeof(probe), MSG_PEEK | MSG_TRUNC);
	if (n < 0)
		return n;
	err = rx_grow(s, (size_t)n < 8192 ? 8192 : (size_t)n);
	if (err < 0)
		return err;
	n = recv_flags(s, s->rx, s->rx_cap, 0);
	if (n >= 0 && (size_t)n > s->rx_cap)
		return -EMSGSIZE;
	return n;
}

const struct nlmsghdr *vfm_msg_next(const uint8_t **cur, const uint8_t *end, bool *bad)
{
	const struct nlmsghdr *h = (const struct nlmsghdr *)*cur;
	size_t left = (size_t)(end - *cur);
	size_t step;

	if (*cur >= end)
		return NULL;
	if (left < NLMSG_HDRLEN || h->nlmsg_len < NLMSG_HDRLEN || h->nlmsg_len > left) {
		*bad = true;
		return NULL;
	}
	step = NLMSG_ALIGN(h->nlmsg_len);
	*cur = step < left ? *cur + step : end;
	return h;
}

static void ext_ack_msg(const struct nlmsghdr *h, size_t off, char *msg, size_t msglen)
{
	const uint8_t *cur = (const uint8_t *)h + off;
	const uint8_t *end = (const uint8_t *)h + h->nlmsg_len;
	const struct nlattr *a;
	bool bad = false;

	while ((a = vfm_attr_next(&cur, end, &bad)) != NULL) {
		if (vfm_attr_type(a) == NLMSGERR_ATTR_MSG && vfm_attr_len(a) > 0) {
			vfm_copy_str(msg, msglen, a);
			return;
		}
	}
}

int vfm_msg_error(const struct nlmsghdr *h, char *msg, size_t msglen)
{
	const struct nlmsgerr *e = NLMSG_DATA(h);
	size_t off;

	if (msg && msglen)
		msg[0] = 0;
	if (h->nlmsg_len < NLMSG_LENGTH(sizeof(int)))
		return -EBADMSG;
	if (e->error > 0 || e->error < -4095)
		return -EBADMSG;
	if (!(h->nlmsg_flags & NLM_F_ACK_TLVS) || !msg || !msglen)
		return e->error;
	if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
		return e->error;
	off = NLMSG_LENGTH(sizeof(*e));
	if (!(h->nlmsg_flags & NLM_F_CAPPED))
		off += NLMSG_ALIGN(e->msg.nlmsg_len) - NLMSG_HDRLEN;
	if (off < h->nlmsg_len)
		ext_ack_msg(h, off, msg, msglen);
	return e->error;
}

static bool msg_is_ours(const struct vfm_sock *s, const struct nlmsghdr *h, uint32_t seq)
{
	return h->nlmsg_seq == seq && (h->nlmsg_pid == s->portid || h->nlmsg_pid == 0);
}

/* Receive a datagram expected to be small (an ACK) in one call. One that did not fit is not an
 * ACK (a leftover of an abandoned dump): it is dropped, as if empty. */
static long sock_recv_small(struct vfm_sock *s)
{
	int err = rx_grow(s, 8192);
	long n;

	if (err < 0)
		return err;
	n = recv_flags(s, s->rx, s->rx_cap, MSG_TRUNC);
	return n >= 0 && (size_t)n > s->rx_cap ? 0 : n;
}

static int walk_msgs(struct vfm_sock *s, long n, vfm_msg_fn fn, void *arg)
{
	const uint8_t *cur = s->rx, *end;
	const struct nlmsghdr *h;
	bool bad = false;
	int r;

	if (n < 0)
		return (int)n;
	end = s->rx + n;
	while ((h = vfm_msg_next(&cur, end, &bad)) != NULL)
		if ((r = fn(s, h, arg)) != 0)
			return r;
	return bad ? -EBADMSG : 0;
}

int vfm_recv_msgs(struct vfm_sock *s, vfm_msg_fn fn, void *arg)
{
	return walk_msgs(s, vfm_sock_recv(s), fn, arg);
}

int vfm_recv_acks(struct vfm_sock *s, vfm_msg_fn fn, void *arg)
{
	/* Without NETLINK_CAP_ACK an error ACK echoes the whole request: size it first. */
	return walk_msgs(s, s->cap_ack ? sock_recv_small(s) : vfm_sock_recv(s), fn, arg);
}

struct request_ack {
	uint32_t seq;
	int err;
	char *errmsg;
	size_t errlen;
};

static int request_ack_msg(const struct vfm_sock *s, const struct nlmsghdr *h, void *arg)
{
	struct request_ack *ra = arg;

	if (!msg_is_ours(s, h, ra->seq) || h->nlmsg_type != NLMSG_ERROR)
		return 0;
	ra->err = vfm_msg_error(h, ra->errmsg, ra->errlen);
	return 1;
}

int vfm_request(struct vfm_sock *s, struct vfm_buf *b, char *errmsg, size_t errlen)
{
	struct request_ack ra = { ((const struct nlmsghdr *)b->p)->nlmsg_seq, 0, errmsg, errlen };
	int r = vfm_sock_send(s, b->p, b->len);

	vfm_set_msg(errmsg, errlen, "");
	if (r < 0)
		return r;
	while ((r = vfm_recv_acks(s, request_ack_msg, &ra)) == 0)
		;
	return r < 0 ? r : ra.err;
}
