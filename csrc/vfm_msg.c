/* Netlink messages and attributes: building (bounds-checked, padding zeroed) and walking
 * (never outside the buffer). */
#include <errno.h>
#include <string.h>

#include "vfm_internal.h"

void *vfm_buf_reserve(struct vfm_buf *b, size_t len)
{
	size_t alen = NLMSG_ALIGN(len);
	void *p;

	if (alen < len || b->cap - b->len < alen)
		return NULL;
	p = b->p + b->len;
	memset(p, 0, alen);
	b->len += alen;
	return p;
}

void *vfm_buf_claim(struct vfm_buf *b, size_t len)
{
	size_t alen = NLMSG_ALIGN(len);
	void *p;

	if (alen < len || b->cap - b->len < alen)
		return NULL;
	p = b->p + b->len;
	b->len += alen;
	return p;
}

int vfm_buf_msg_start(struct vfm_buf *b, uint16_t type, uint16_t flags, uint32_t seq)
{
	struct nlmsghdr *h;

	b->len = 0;
	h = vfm_buf_reserve(b, NLMSG_HDRLEN);
	if (!h)
		return -ENOSPC;
	h->nlmsg_type = type;
	h->nlmsg_flags = flags;
	h->nlmsg_seq = seq;
	return 0;
}

void vfm_buf_msg_end(struct vfm_buf *b)
{
	((struct nlmsghdr *)b->p)->nlmsg_len = (uint32_t)b->len;
}

int vfm_attr_put(struct vfm_buf *b, uint16_t type, const void *data, size_t len)
{
	struct nlattr *a;

	if (len > UINT16_MAX - NLA_HDRLEN)
		return -EMSGSIZE;
	a = vfm_buf_reserve(b, NLA_HDRLEN + len);
	if (!a)
		return -ENOSPC;
	a->nla_type = type;
	a->nla_len = (uint16_t)(NLA_HDRLEN + len);
	if (len)
		memcpy((uint8_t *)a + NLA_HDRLEN, data, len);
	return 0;
}

int vfm_attr_put_u32(struct vfm_buf *b, uint16_t type, uint32_t v)
{
	return vfm_attr_put(b, type, &v, sizeof(v));
}

int vfm_attr_put_u8(struct vfm_buf *b, uint16_t type, uint8_t v)
{
	return vfm_attr_put(b, type, &v, sizeof(v));
}

int vfm_attr_put_str(struct vfm_buf *b, uint16_t type, const char *s)
{
	return vfm_attr_put(b, type, s, strlen(s) + 1);
}

long vfm_nest_start(struct vfm_buf *b, uint16_t type)
{
	long off = (long)b->len;

	if (vfm_attr_put(b, type, NULL, 0) < 0)
		return -ENOSPC;
	return off;
}

int vfm_nest_end(struct vfm_buf *b, long off)
{
	struct nlattr *a = (struct nlattr *)(b->p + off);
	size_t len = b->len - (size_t)off;

	if (len > UINT16_MAX)
		return -EMSGSIZE;
	a->nla_len = (uint16_t)len;
	return 0;
}

void vfm_nest_cancel(struct vfm_buf *b, long off)
{
	b->len = (size_t)off;
}

int vfm_ifinfo_put(struct vfm_buf *b, int32_t ifindex)
{
	struct ifinfomsg *ifi = vfm_buf_reserve(b, sizeof(*ifi));

	if (!ifi)
		return -ENOSPC;
	ifi->ifi_family = 0; /* AF_UNSPEC */
	ifi->ifi_index = ifindex;
	return 0;
}

const struct nlattr *vfm_attr_next(const uint8_t **cur, const uint8_t *end, bool *bad)
{
	const struct nlattr *a = (const struct nlattr *)*cur;
	size_t left = (size_t)(end - *cur);
	size_t step;

	if (*cur >= end)
		return NULL;
	if (left < NLA_HDRLEN || a->nla_len < NLA_HDRLEN || a->nla_len > left) {
		*bad = true;
		return NULL;
	}
	step = NLA_ALIGN(a->nla_len);
	*cur = step < left ? *cur + step : end;
	return a;
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

void vfm_copy_str(char *dst, size_t dstlen, const struct nlattr *a)
{
	size_t n = vfm_attr_len(a);
	const char *src = vfm_attr_data(a);
	const char *nul = memchr(src, 0, n);

	if (nul)
		n = (size_t)(nul - src);
	if (n >= dstlen)
		n = dstlen - 1;
	memcpy(dst, src, n);
	dst[n] = 0;
}

void vfm_set_msg(char *dst, size_t dstlen, const char *src)
{
	size_t n;

	if (!dst || !dstlen)
		return;
	n = strnlen(src, dstlen - 1);
	memcpy(dst, src, n);
	dst[n] = 0;
}
