/* See fake_sock.h. */
#include <errno.h>
#include <linux/netlink.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fake_sock.h"

struct dgram {
	uint8_t *p;
	size_t len;
	uint8_t flags;
};

static struct dgram dgrams[FAKE_MAX_DGRAMS];
static size_t ndgrams, next;
static struct vfm_sock *cur;

static void load(const uint8_t *data, size_t size)
{
	ndgrams = next = 0;
	while (size >= 5 && ndgrams < FAKE_MAX_DGRAMS) {
		uint32_t len;
		struct dgram *d = &dgrams[ndgrams++];

		memcpy(&len, data, 4);
		d->flags = data[4];
		data += 5;
		size -= 5;
		if (len > size)
			len = (uint32_t)size;
		d->p = malloc(len ? len : 1);
		memcpy(d->p, data, len);
		d->len = len;
		data += len;
		size -= len;
	}
}

struct vfm_sock *fake_open(const uint8_t *data, size_t size, int cap_ack)
{
	struct vfm_sock *s = calloc(1, sizeof(*s));

	load(data, size);
	s->fd = -1;
	s->portid = FAKE_PORTID;
	s->cap_ack = cap_ack != 0;
	cur = s;
	return s;
}

void fake_close(struct vfm_sock *s)
{
	for (size_t i = 0; i < ndgrams; i++)
		free(dgrams[i].p);
	ndgrams = next = 0;
	cur = NULL;
	vfm_sock_close(s); /* fd -1: only its buffers */
}

const uint8_t *fake_dgram(size_t i, size_t *len)
{
	if (i >= ndgrams)
		return NULL;
	*len = dgrams[i].len;
	return dgrams[i].p;
}

size_t fake_ndgrams(void)
{
	return ndgrams;
}

static void stamp(struct dgram *d)
{
	size_t off = 0;

	while (d->len - off >= NLMSG_HDRLEN) {
		struct nlmsghdr h;

		memcpy(&h, d->p + off, sizeof(h));
		if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > d->len - off)
			return;
		h.nlmsg_seq = cur ? cur->seq : 0;
		h.nlmsg_pid = FAKE_PORTID;
		memcpy(d->p + off, &h, sizeof(h));
		off += NLMSG_ALIGN(h.nlmsg_len);
		if (off >= d->len)
			return;
	}
}

ssize_t __wrap_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *src,
			socklen_t *srclen);
ssize_t __wrap_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *dst,
		      socklen_t dstlen);

ssize_t __wrap_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *src,
			socklen_t *srclen)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	struct dgram *d;
	size_t n;

	(void)fd;
	if (next >= ndgrams) {
		errno = EAGAIN;
		return -1;
	}
	d = &dgrams[next];
	if (d->flags & FAKE_STAMP) {
		stamp(d);
		d->flags &= (uint8_t)~FAKE_STAMP;
	}
	if (d->flags & FAKE_FOREIGN)
		sa.nl_pid = 1;
	n = d->len < len ? d->len : len;
	memcpy(buf, d->p, n);
	if (src && srclen) {
		memcpy(src, &sa, *srclen < sizeof(sa) ? *srclen : sizeof(sa));
		*srclen = sizeof(sa);
	}
	if (!(flags & MSG_PEEK))
		next++;
	return (ssize_t)((flags & MSG_TRUNC) ? d->len : n);
}

ssize_t __wrap_sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *dst,
		      socklen_t dstlen)
{
	(void)fd;
	(void)buf;
	(void)flags;
	(void)dst;
	(void)dstlen;
	return (ssize_t)len;
}
