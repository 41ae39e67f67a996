/* VF changes: batched RTM_SETLINK (pipelined), then the exact outcome of every VF (read-back of
 * refused messages, one per message, retries). Encoding is vfm_vf_encode.c's. */
#include <errno.h>
#include <linux/if_link.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vfm_internal.h"

#define VFM_MSGBUF (VFM_NEST_MAX + 1024u)

struct batch {
	struct vfm_sock *s;
	const struct vfm_vf_change *ch;
	struct vfm_vf_result *res;
	const struct vfm_batch_opts *opts;
	uint32_t *order;         /* change indices, grouped by PF */
	struct vfm_inflight *fl;     /* one per message of the current round */
	uint8_t *buf;            /* one message being encoded */
};

/* ---- state comparison ---- */

bool vfm_change_matches(const struct vfm_vf_change *c, const struct vfm_vf_info *vi)
{
	uint16_t want_proto = c->vlan_proto ? c->vlan_proto : 0x8100;
	uint16_t have_proto = vi->vlan_proto ? vi->vlan_proto : 0x8100;

	if ((c->set & VFM_SET_MAC) && memcmp(vi->mac, c->mac, sizeof(c->mac)) != 0)
		return false;
	if ((c->set & VFM_SET_VLAN) &&
	    (vi->vlan != c->vlan || vi->qos != c->qos || (c->vlan && want_proto != have_proto)))
		return false;
	if ((c->set & VFM_SET_RATE) &&
	    (vi->min_tx_rate != c->min_tx_rate || vi->max_tx_rate != c->max_tx_rate))
		return false;
	if ((c->set & VFM_SET_SPOOFCHK) && vi->spoofchk != (int32_t)c->spoofchk)
		return false;
	if ((c->set & VFM_SET_TRUST) && vi->trust != (int32_t)c->trust)
		return false;
	if ((c->set & VFM_SET_LINK_STATE) && vi->link_state != (int32_t)c->link_state)
		return false;
	return true;
}

/* Send one message per entry of fl (fl[i].first / .count set), pipelined in windows. */
static int send_round(struct batch *bt, size_t nfl, uint32_t max_per_msg)
{
	size_t i, base = 0;
	int err;

	for (i = 0; i < nfl; i++) {
		struct vfm_buf b = { bt->buf, VFM_MSGBUF, 0 };
		size_t taken;
		int len;

		bt->fl[i].seq = ++bt->s->seq;
		bt->fl[i].err = VFM_PENDING;
		bt->fl[i].msg[0] = 0;
		len = vfm_vf_encode_run(bt->ch, bt->order + bt->fl[i].first, bt->fl[i].count, max_per_msg,
				 bt->fl[i].seq, &b, &taken);
		if (len < 0)
			return len;
		if (taken != bt->fl[i].count)
			return -EMSGSIZE;
		err = vfm_sock_send(bt->s, b.p, b.len);
		if (err)
			return err;
		if (i + 1 - base == VFM_WINDOW) {
			err = vfm_collect_acks(bt->s, bt->fl + base, i + 1 - base);
			if (err)
				return err;
			base = i + 1;
		}
	}
	return vfm_collect_acks(bt->s, bt->fl + base, nfl - base);
}

/* ---- the apply algorithm ---- */

static int cmp_by_pf(const void *a, const void *b, void *arg)
{
	const struct vfm_vf_change *ch = arg;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	if (ch[x].ifindex != ch[y].ifindex)
		return ch[x].ifindex < ch[y].ifindex ? -1 : 1;
	return x < y ? -1 : x > y;
}

/* Plan the first round: as many entries per message as fit, one PF per message. */
static size_t plan_batches(struct batch *bt, size_t n)
{
	size_t pos = 0, nfl = 0;

	while (pos < n) {
		struct vfm_buf b = { bt->buf, VFM_MSGBUF, 0 };
		size_t taken = 0;

		if (vfm_vf_encode_run(bt->ch, bt->order + pos, n - pos, bt->opts->max_per_msg, 0, &b,
			       &taken) < 0 || taken == 0)
			taken = 1; /* send alone: its ACK will carry the error */
		bt->fl[nfl].first = (uint32_t)pos;
		bt->fl[nfl].count = (uint32_t)taken;
		nfl++;
		pos += taken;
	}
	return nfl;
}

static const struct vfm_vf_info *find_vf(const struct vfm_link *link, uint32_t vf)
{
	uint32_t i;

	if (vf < link->n_vfs && link->vfs[vf].vf == vf)
		return &link->vfs[vf];
	for (i = 0; i < link->n_vfs; i++)
		if (link->vfs[i].vf == vf)
			return &link->vfs[i];
	return NULL;
}

/* A message failed: the kernel applied its entries up to the failing one. Read the PF back; the
 * leading entries already in their requested state are applied; return where the rest begins. */
static uint32_t resolve_failed(struct batch *bt, const struct vfm_inflight *f)
{
	struct vfm_links *l = NULL;
	uint32_t j = 0;
	int32_t ifindex = bt->ch[bt->order[f->first]].ifindex;

	if (vfm_links_get(bt->s, ifindex, NULL, &l, NULL, 0) < 0 || l->n != 1) {
		vfm_links_free(l);
		return 0;
	}
	for (; j < f->count; j++) {
		uint32_t ci = bt->order[f->first + j];
		const struct vfm_vf_info *vi = find_vf(&l->links[0], bt->ch[ci].vf);

		if (!vi || !vfm_change_matches(&bt->ch[ci], vi))
			break;
		bt->res[ci].err = 0;
	}
	vfm_links_free(l);
	return j;
}

static bool retriable(int err)
{
	return err == -EAGAIN || err == -EBUSY;
}

static void sleep_us(uint64_t us)
{
	struct timespec ts = { .tv_sec = (time_t)(us / 1000000u),
			       .tv_nsec = (long)(us % 1000000u) * 1000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Record a round's outcome; entries still undecided go (in order) into bt->order[0..]. */
static size_t settle_round(struct batch *bt, size_t nfl, uint32_t *todo)
{
	size_t i, ntodo = 0;

	for (i = 0; i < nfl; i++) {
		const struct vfm_inflight *f = &bt->fl[i];
		uint32_t j, start = 0;

		for (j = 0; j < f->count; j++)
			bt->res[bt->order[f->first + j]].attempts++;
		if (f->err == 0) {
			for (j = 0; j < f->count; j++)
				bt->res[bt->order[f->first + j]].err = 0;
			continue;
		}
		if (f->count > 1)
			start = resolve_failed(bt, f);
		for (j = start; j < f->count; j++) {
			uint32_t ci = bt->order[f->first + j];

			bt->res[ci].err = f->count == 1 ? f->err : VFM_PENDING;
			if (f->count == 1)
				vfm_set_msg(bt->res[ci].msg, sizeof(bt->res[ci].msg), f->msg);
			if (f->count > 1 || (retriable(f->err) &&
					     bt->res[ci].attempts <= bt->opts->retries))
				todo[ntodo++] = ci;
		}
	}
	return ntodo;
}

/* Send rounds until every entry is decided; with sent, the first round (bt->fl[0..nfl)) has
 * already been sent and answered. */
static int run_rounds(struct batch *bt, size_t nfl, uint32_t *todo, bool sent)
{
	uint64_t backoff = bt->opts->backoff_us;
	int err;

	for (;;) {
		size_t ntodo, i;
		bool retry = false;

		err = sent ? 0 : send_round(bt, nfl, bt->opts->max_per_msg);
		sent = false;
		if (err)
			return err;
		ntodo = settle_round(bt, nfl, todo);
		if (!ntodo)
			return 0;
		/* Undecided entries go one per message; a round of only retries waits first. */
		for (i = 0; i < ntodo; i++) {
			retry |= bt->res[todo[i]].err != VFM_PENDING;
			bt->order[i] = todo[i];
			bt->fl[i].first = (uint32_t)i;
			bt->fl[i].count = 1;
		}
		nfl = ntodo;
		if (retry) {
			sleep_us(backoff);
			backoff = backoff * 2 > 1000000u ? 1000000u : backoff * 2;
		}
	}
}

static int batch_alloc(struct batch *bt, size_t n, uint32_t **todo)
{
	bt->order = calloc(n, sizeof(*bt->order));
	bt->fl = calloc(n, sizeof(*bt->fl));
	bt->buf = malloc(VFM_MSGBUF);
	*todo = calloc(n, sizeof(**todo));
	if (!bt->order || !bt->fl || !bt->buf || !*todo)
		return -ENOMEM;
	return 0;
}

static void batch_free(struct batch *bt, uint32_t *todo)
{
	free(bt->order);
	free(bt->fl);
	free(bt->buf);
	free(todo);
}

static int apply_all(struct vfm_sock *s, const struct vfm_vf_change *ch, size_t n,
		     const struct vfm_batch_opts *opts, struct vfm_vf_result *res,
		     const struct vfm_inflight *refused)
{
	struct vfm_batch_opts dflt = { 0, 5, 1000 };
	struct batch bt = { s, ch, res, opts ? opts : &dflt, NULL, NULL, NULL };
	uint32_t *todo = NULL;
	size_t i, failed = 0;
	int err;

	if (n == 0)
		return 0;
	if (n > UINT32_MAX)
		return -E2BIG;
	err = batch_alloc(&bt, n, &todo);
	for (i = 0; !err && i < n; i++) {
		bt.order[i] = (uint32_t)i;
		res[i].err = VFM_PENDING;
		res[i].attempts = 0;
		res[i].msg[0] = 0;
	}
	if (!err && refused) {
		bt.fl[0] = *refused;
		bt.fl[0].first = 0;
		bt.fl[0].count = (uint32_t)n;
		err = run_rounds(&bt, 1, todo, true);
	} else if (!err) {
		qsort_r(bt.order, n, sizeof(*bt.order), cmp_by_pf, (void *)ch);
		err = run_rounds(&bt, plan_batches(&bt, n), todo, false);
	}
	batch_free(&bt, todo);
	if (err)
		return err;
	for (i = 0; i < n; i++)
		failed += res[i].err != 0;
	return failed > INT32_MAX ? INT32_MAX : (int)failed;
}

int vfm_vf_apply(struct vfm_sock *s, const struct vfm_vf_change *ch, size_t n,
		 const struct vfm_batch_opts *opts, struct vfm_vf_result *res)
{
	return apply_all(s, ch, n, opts, res, NULL);
}

int vfm_vf_resolve_refused(struct vfm_sock *s, const struct vfm_vf_change *ch, size_t n,
			   const struct vfm_batch_opts *opts, struct vfm_vf_result *res,
			   const struct vfm_inflight *refused)
{
	return apply_all(s, ch, n, opts, res, refused);
}
