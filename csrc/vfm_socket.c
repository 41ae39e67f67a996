/* The NETLINK_ROUTE socket: open, options, close, send, receive into its own buffer. */
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

/* Receive a datagram expected to be small (an ACK) in one call. One that did not fit is not an
 * ACK (a leftover of an abandoned dump): it is dropped, as if empty. */
long vfm_sock_recv_small(struct vfm_sock *s)
{
	int err = rx_grow(s, 8192);
	long n;

	if (err < 0)
		return err;
	n = recv_flags(s, s->rx, s->rx_cap, MSG_TRUNC);
	return n >= 0 && (size_t)n > s->rx_cap ? 0 : n;
}
