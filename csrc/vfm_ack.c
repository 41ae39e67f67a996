/* Replies: NLMSG_ERROR (ACKs and errors, extended-ACK text) and the loops that wait for them. */
#include <errno.h>
#include <string.h>

#include "vfm_internal.h"

#ifndef NLM_F_CAPPED
#define NLM_F_CAPPED 0x100
#endif
#ifndef NLM_F_ACK_TLVS
#define NLM_F_ACK_TLVS 0x200
#endif
#ifndef NLMSGERR_ATTR_MSG
#define NLMSGERR_ATTR_MSG 1
#endif

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

/* An NLMSG_ERROR where data was expected: its error, or -EBADMSG for a bare ACK. */
int vfm_msg_error_reply(const struct nlmsghdr *h, char *msg, size_t msglen)
{
	int err = vfm_msg_error(h, msg, msglen);

	return err < 0 ? err : -EBADMSG;
}


static bool msg_is_ours(const struct vfm_sock *s, const struct nlmsghdr *h, uint32_t seq)
{
	return h->nlmsg_seq == seq && (h->nlmsg_pid == s->portid || h->nlmsg_pid == 0);
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
	return walk_msgs(s, s->cap_ack ? vfm_sock_recv_small(s) : vfm_sock_recv(s), fn, arg);
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

struct acks {
	struct vfm_inflight *fl;
	size_t nfl;
	size_t left;
};

static int ack_record(const struct vfm_sock *s, const struct nlmsghdr *h, void *arg)
{
	struct acks *a = arg;
	uint32_t k = h->nlmsg_seq - a->fl[0].seq;

	if (h->nlmsg_type != NLMSG_ERROR || h->nlmsg_pid != s->portid)
		return 0;
	if (k >= a->nfl || a->fl[k].err != VFM_PENDING)
		return 0;
	a->fl[k].err = vfm_msg_error(h, a->fl[k].msg, sizeof(a->fl[k].msg));
	a->left--;
	return 0;
}

int vfm_collect_acks(struct vfm_sock *s, struct vfm_inflight *fl, size_t nfl)
{
	struct acks a = { fl, nfl, 0 };
	size_t i;
	int err;

	for (i = 0; i < nfl; i++)
		a.left += fl[i].err == VFM_PENDING;
	while (a.left)
		if ((err = vfm_recv_acks(s, ack_record, &a)) < 0)
			return err;
	return 0;
}
