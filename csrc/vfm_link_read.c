/* RTM_GETLINK requests: one link (by index or name) or a dump of all links, with VF lists. */
#include <errno.h>
#include <linux/if_link.h>
#include <string.h>

#include "vfm_internal.h"

#define VFM_DUMP_TRIES 8

/* What the replies to one request are read into. */
struct getlink_ctx {
	uint32_t seq;
	struct vfm_links *l;
	bool intr;      /* a dump message was marked NLM_F_DUMP_INTR */
	int first_err;  /* a dump's first parse error, kept while the rest is drained */
	char *errmsg;
	size_t errlen;
};

static int getlink_msg(struct vfm_buf *b, uint32_t seq, int32_t ifindex, const char *name)
{
	uint16_t flags = NLM_F_REQUEST | (ifindex < 0 ? NLM_F_DUMP : 0);
	int err = vfm_buf_msg_start(b, RTM_GETLINK, flags, seq);

	if (!err)
		err = vfm_ifinfo_put(b, ifindex > 0 ? ifindex : 0);
	if (!err && ifindex == 0 && name)
		err = vfm_attr_put_str(b, IFLA_IFNAME, name);
	if (!err)
		err = vfm_attr_put_u32(b, IFLA_EXT_MASK, RTEXT_FILTER_VF | RTEXT_FILTER_SKIP_STATS);
	vfm_buf_msg_end(b);
	return err;
}

static bool getlink_ours(const struct vfm_sock *s, const struct nlmsghdr *h,
			 const struct getlink_ctx *c)
{
	return h->nlmsg_seq == c->seq && h->nlmsg_pid == s->portid;
}

/* NLMSG_DONE: the error the kernel put in it, if any, is kept. */
static void reply_done(struct getlink_ctx *c, const struct nlmsghdr *h)
{
	int derr = 0;

	if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(int)))
		memcpy(&derr, NLMSG_DATA(h), sizeof(int));
	if (derr < 0 && !c->first_err)
		c->first_err = derr;
}

/* The messages that end a reply: NLMSG_ERROR (its -errno) and NLMSG_DONE (1); 0: data. */
static int reply_end(struct getlink_ctx *c, const struct nlmsghdr *h)
{
	if (h->nlmsg_type == NLMSG_ERROR)
		return vfm_msg_error_reply(h, c->errmsg, c->errlen);
	c->intr |= (h->nlmsg_flags & NLM_F_DUMP_INTR) != 0;
	if (h->nlmsg_type != NLMSG_DONE)
		return 0;
	reply_done(c, h);
	return 1;
}

/* The reply to a single-link request: its one message ends it (1), or its error. */
static int single_msg(const struct vfm_sock *s, const struct nlmsghdr *h, void *arg)
{
	struct getlink_ctx *c = arg;
	int r;

	if (!getlink_ours(s, h, c))
		return 0;
	r = reply_end(c, h);
	if (r == 0)
		r = vfm_links_add_msg(c->l, h);
	return r < 0 ? r : 1;
}

/* A message of a dump: NLMSG_DONE ends it (1). A parse error does not stop the reading: the
 * dump is drained so that the socket is clean for the next request. */
static int dump_msg(const struct vfm_sock *s, const struct nlmsghdr *h, void *arg)
{
	struct getlink_ctx *c = arg;
	int r;

	if (!getlink_ours(s, h, c))
		return 0;
	r = reply_end(c, h);
	if (r != 0 || c->first_err)
		return r;
	r = vfm_links_add_msg(c->l, h);
	if (r < 0)
		c->first_err = r;
	return 0;
}

/* Read the replies into c->l. Returns 0, 1 when an interrupted dump must be redone, -errno. */
static int getlink_collect(struct vfm_sock *s, bool dump, struct getlink_ctx *c)
{
	int r;

	while ((r = vfm_recv_msgs(s, dump ? dump_msg : single_msg, c)) == 0)
		;
	if (r < 0)
		return r;
	return c->first_err ? c->first_err : c->intr ? 1 : 0;
}

/* One request and its replies: 0 (*l filled), 1 (an interrupted dump), -errno. */
static int getlink_once(struct vfm_sock *s, int32_t ifindex, const char *name,
			struct vfm_links *l, char *errmsg, size_t errlen)
{
	uint8_t req[128];
	struct vfm_buf b = { req, sizeof(req), 0 };
	struct getlink_ctx c = { ++s->seq, l, false, 0, errmsg, errlen };
	int err = getlink_msg(&b, c.seq, ifindex, name);

	if (!err)
		err = vfm_sock_send(s, b.p, b.len);
	return err ? err : getlink_collect(s, ifindex < 0, &c);
}

int vfm_links_get(struct vfm_sock *s, int32_t ifindex, const char *name, struct vfm_links **out,
		  char *errmsg, size_t errlen)
{
	*out = NULL;
	vfm_set_msg(errmsg, errlen, "");
	for (int tries = 0; tries < VFM_DUMP_TRIES; tries++) {
		struct vfm_links *l = vfm_links_new();
		int err;

		if (!l)
			return -ENOMEM;
		err = getlink_once(s, ifindex, name, l, errmsg, errlen);
		if (err == 0) {
			*out = l;
			return 0;
		}
		vfm_links_free(l);
		if (err < 0)
			return err;
		/* 1: the dump was interrupted by a change; read it all again */
	}
	return -EINTR;
}
