/* VF changes: batched RTM_SETLINK encoding, pipelined sending, exact per-VF outcome. */
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

/* ---- encoding ---- */

static int put_vf_struct(struct vfm_buf *b, uint16_t type, const void *data, size_t len)
{
	return vfm_attr_put(b, type, data, len);
}

static int put_mac(struct vfm_buf *b, const struct vfm_vf_change *c)
{
	struct ifla_vf_mac m;

	memset(&m, 0, sizeof(m));
	m.vf = c->vf;
	memcpy(m.mac, c->mac, sizeof(c->mac));
	return put_vf_struct(b, IFLA_VF_MAC, &m, sizeof(m));
}

static int put_vlan(struct vfm_buf *b, const struct vfm_vf_change *c)
{
	struct ifla_vf_vlan_info v;
	uint16_t proto = c->vlan_proto ? c->vlan_proto : 0x8100;
	long nest = vfm_nest_start(b, IFLA_VF_VLAN_LIST);
	int err;

	if (nest < 0)
		return (int)nest;
	memset(&v, 0, sizeof(v));
	v.vf = c->vf;
	v.vlan = c->vlan;
	v.qos = c->qos;
	v.vlan_proto = (uint16_t)((proto >> 8) | (proto << 8)); /* __be16 */
	err = put_vf_struct(b, IFLA_VF_VLAN_INFO, &v, sizeof(v));
	return err ? err : vfm_nest_end(b, nest);
}

static int put_setting(struct vfm_buf *b, uint16_t type, uint32_t vf, uint32_t value)
{
	uint32_t pair[2] = { vf, value }; /* ifla_vf_spoofchk / _trust / _link_state */

	return put_vf_struct(b, type, pair, sizeof(pair));
}

static int put_rate(struct vfm_buf *b, const struct vfm_vf_change *c)
{
	struct ifla_vf_rate r = { .vf = c->vf, .min_tx_rate = c->min_tx_rate,
				  .max_tx_rate = c->max_tx_rate };

	return put_vf_struct(b, IFLA_VF_RATE, &r, sizeof(r));
}

static int put_vf_attrs(struct vfm_buf *b, const struct vfm_vf_change *c)
{
	int err = 0;

	if (!err && (c->set & VFM_SET_MAC))
		err = put_mac(b, c);
	if (!err && (c->set & VFM_SET_VLAN))
		err = put_vlan(b, c);
	if (!err && (c->set & VFM_SET_RATE))
		err = put_rate(b, c);
	if (!err && (c->set & VFM_SET_SPOOFCHK))
		err = put_setting(b, IFLA_VF_SPOOFCHK, c->vf, c->spoofchk);
	if (!err && (c->set & VFM_SET_LINK_STATE))
		err = put_setting(b, IFLA_VF_LINK_STATE, c->vf, c->link_state);
	if (!err && (c->set & VFM_SET_TRUST))
		err = put_setting(b, IFLA_VF_TRUST, c->vf, c->trust);
	return err;
}

/* One IFLA_VF_INFO; on overflow (buffer or the list's 64 KiB) the entry is taken back. */
static int put_vf_info(struct vfm_buf *b, long list, const struct vfm_vf_change *c)
{
	long nest = vfm_nest_start(b, IFLA_VF_INFO);
	int err;

	if (nest < 0)
		return (int)nest;
	err = put_vf_attrs(b, c);
	if (!err)
		err = vfm_nest_end(b, nest);
	if (!err && b->len - (size_t)list > VFM_NEST_MAX)
		err = -EMSGSIZE;
	if (err)
		vfm_nest_cancel(b, nest);
	return err;
}

static const struct vfm_vf_change *entry(const struct vfm_vf_change *ch, const uint32_t *idx,
					 size_t i)
{
	return &ch[idx ? idx[i] : i];
}

/* Encode entries idx[0..n) (identity when idx is NULL) of one PF into one RTM_SETLINK. */
static int encode_run(const struct vfm_vf_change *ch, const uint32_t *idx, size_t n,
		      uint32_t max_per_msg, uint32_t seq, struct vfm_buf *b, size_t *taken)
{
	int32_t ifindex = entry(ch, idx, 0)->ifindex;
	size_t i = 0;
	long list;
	int err;

	*taken = 0;
	err = vfm_buf_msg_start(b, RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, seq);
	if (!err)
		err = vfm_ifinfo_put(b, ifindex);
	if (err)
		return err;
	list = vfm_nest_start(b, IFLA_VFINFO_LIST);
	if (list < 0)
		return (int)list;
	for (; i < n && (!max_per_msg || i < max_per_msg); i++) {
		const struct vfm_vf_change *c = entry(ch, idx, i);

		if (c->ifindex != ifindex)
			break;
		err = put_vf_info(b, list, c);
		if (err == -EMSGSIZE || err == -ENOSPC)
			break;
		if (err)
			return err;
	}
	if (i == 0)
		return -ENOSPC;
	err = vfm_nest_end(b, list);
	if (err)
		return err;
	vfm_buf_msg_end(b);
	*taken = i;
	return (int)b->len;
}

int vfm_vf_encode(const struct vfm_vf_change *ch, size_t n, uint32_t max_per_msg, uint32_t seq,
		  uint8_t *buf, size_t buflen, size_t *taken)
{
	struct vfm_buf b = { buf, buflen, 0 };

	*taken = 0;
	if (n == 0)
		return -EINVAL;
	return encode_run(ch, NULL, n, max_per_msg, seq, &b, taken);
}

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

/* ---- sending and ACKs ---- */

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
		len = encode_run(bt->ch, bt->order + bt->fl[i].first, bt->fl[i].count, max_per_msg,
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

		if (encode_run(bt->ch, bt->order + pos, n - pos, bt->opts->max_per_msg, 0, &b,
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

/* ---- single-request settings: a netdev's own MAC, 802.1Qbh port profiles ---- */

int vfm_link_set_addr(struct vfm_sock *s, int32_t ifindex, const uint8_t *addr, size_t len,
		      char *errmsg, size_t errlen)
{
	uint8_t req[256];
	struct vfm_buf b = { req, sizeof(req), 0 };
	int err = vfm_buf_msg_start(&b, RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, ++s->seq);

	if (len == 0 || len > VFM_MAC_LEN)
		return -EINVAL;
	if (!err)
		err = vfm_ifinfo_put(&b, ifindex);
	if (!err)
		err = vfm_attr_put(&b, IFLA_ADDRESS, addr, len);
	if (err)
		return err;
	vfm_buf_msg_end(&b);
	return vfm_request(s, &b, errmsg, errlen);
}

static int put_port(struct vfm_buf *b, const struct vfm_port_req *req)
{
	char profile[sizeof(req->profile) + 1];
	int err = vfm_attr_put_u32(b, IFLA_PORT_VF, req->vf);

	memcpy(profile, req->profile, sizeof(req->profile));
	profile[sizeof(req->profile)] = 0;
	if (!err && profile[0])
		err = vfm_attr_put_str(b, IFLA_PORT_PROFILE, profile);
	if (!err && req->has_instance_uuid)
		err = vfm_attr_put(b, IFLA_PORT_INSTANCE_UUID, req->instance_uuid, 16);
	if (!err && req->has_host_uuid)
		err = vfm_attr_put(b, IFLA_PORT_HOST_UUID, req->host_uuid, 16);
	if (!err)
		err = vfm_attr_put_u8(b, IFLA_PORT_REQUEST, req->request);
	return err;
}

int vfm_vf_port_encode(const struct vfm_port_req *req, uint32_t seq, uint8_t *buf, size_t buflen)
{
	struct vfm_buf b = { buf, buflen, 0 };
	long ports, port;
	int err = vfm_buf_msg_start(&b, RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, seq);

	if (!err)
		err = vfm_ifinfo_put(&b, req->ifindex);
	if (err)
		return err;
	ports = vfm_nest_start(&b, IFLA_VF_PORTS);
	port = ports < 0 ? ports : vfm_nest_start(&b, IFLA_VF_PORT);
	if (port < 0)
		return (int)port;
	err = put_port(&b, req);
	if (!err)
		err = vfm_nest_end(&b, port);
	if (!err)
		err = vfm_nest_end(&b, ports);
	if (err)
		return err;
	vfm_buf_msg_end(&b);
	return (int)b.len;
}

int vfm_vf_port_set(struct vfm_sock *s, const struct vfm_port_req *req, char *errmsg,
		    size_t errlen)
{
	uint8_t msg[512];
	struct vfm_buf b = { msg, sizeof(msg), 0 };
	int len = vfm_vf_port_encode(req, ++s->seq, msg, sizeof(msg));

	if (len < 0)
		return len;
	b.len = (size_t)len;
	return vfm_request(s, &b, errmsg, errlen);
}
