/* The bulk MAC path: the admin MACs of many VFs of one or more PFs, text in, failures out.
 *
 * The general path (vfm_vf_apply) takes one struct per change and writes one result per
 * change. Programming every VF at boot needs neither: the MACs arrive as one text
 * ("aa:bb:cc:dd:ee:ff\n..."), are parsed straight into full IFLA_VFINFO_LISTs (every entry is
 * checked before anything is sent), the messages of every PF go out pipelined, and only the VFs
 * of a message the kernel refused go through the general path's resolution (read-back, one per
 * message, retries) to get their exact outcome. */
#include <errno.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "vfm_internal.h"

#define MAC_TEXT 17u /* "aa:bb:cc:dd:ee:ff" */
#define VF_INFO_LEN (2u * NLA_HDRLEN + (uint32_t)sizeof(struct ifla_vf_mac))
#define LIST_MAX_VFS ((VFM_NEST_MAX - NLA_HDRLEN) / VF_INFO_LEN)
#define MSG_HEAD (NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct ifinfomsg)) + NLA_HDRLEN)
#define MAC_OFF (2 * NLA_HDRLEN + offsetof(struct ifla_vf_mac, mac))
#define VF_OFF (2 * NLA_HDRLEN + offsetof(struct ifla_vf_mac, vf))

/* ---- parsing ---- */

/* Lowercase hex digits, stored as value + 1 (0: not a digit). */
static const uint8_t hex1[256] = {
	['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7, ['7'] = 8,
	['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15,
	['f'] = 16,
};

/* One canonical MAC (lowercase, colons); false for anything else, multicast or all-zero. */
static bool parse_one(const char *text, uint8_t out[6])
{
	const uint8_t *p = (const uint8_t *)text;
	uint8_t any = 0;
	bool ok = true;

	for (unsigned int i = 0; i < 6; i++) {
		uint8_t hi = hex1[p[3 * i]], lo = hex1[p[3 * i + 1]];

		ok &= hi && lo && (i == 5 || p[3 * i + 2] == ':');
		out[i] = (uint8_t)((hi - 1) << 4 | (lo - 1));
		any |= out[i];
	}
	return ok && any && !(out[0] & 1);
}

/* Entry i of n in text: a MAC followed by '\n', or by the end for the last one. */
static bool parse_entry(const char *text, size_t len, size_t i, size_t n, uint8_t out[6])
{
	size_t off = i * (MAC_TEXT + 1);
	bool last = i + 1 == n;

	if (off > len || len - off < MAC_TEXT + !last)
		return false;
	if (last ? len - off != MAC_TEXT : text[off + MAC_TEXT] != '\n')
		return false;
	return parse_one(text + off, out);
}

int vfm_macs_parse(const char *text, size_t len, size_t n, uint8_t *out, size_t *bad)
{
	for (size_t i = 0; i < n; i++) {
		if (!parse_entry(text, len, i, n, out + 6 * i)) {
			*bad = i;
			return -EINVAL;
		}
	}
	if (n == 0 && len != 0) {
		*bad = 0;
		return -EINVAL;
	}
	return 0;
}

/* ---- the plan: every message of every job, encoded up front ---- */

struct plan {
	const struct vfm_mac_job *jobs;
	size_t njobs;
	const uint32_t *vfs;    /* NULL: an entry's VF is its position within its job */
	uint32_t per_msg;
	size_t nmsg;
	uint8_t *buf;           /* the messages, back to back (the socket's send buffer) */
	size_t *off;            /* message m starts at buf + off[m] */
	uint32_t *job_of;       /* message m belongs to jobs[job_of[m]] */
	uint32_t *job_start;    /* first entry (global position) of each job */
};

static uint32_t entry_vf(const struct plan *p, uint32_t job, size_t pos)
{
	return p->vfs ? p->vfs[pos] : (uint32_t)(pos - p->job_start[job]);
}

static void put_head(uint8_t *m, int32_t ifindex, size_t count, uint32_t seq)
{
	size_t len = MSG_HEAD + count * VF_INFO_LEN;
	struct nlmsghdr nh = { .nlmsg_len = (uint32_t)len, .nlmsg_type = RTM_SETLINK,
			       .nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK, .nlmsg_seq = seq };
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_index = ifindex };
	struct nlattr list = { .nla_len = (uint16_t)(NLA_HDRLEN + count * VF_INFO_LEN),
			       .nla_type = IFLA_VFINFO_LIST };

	memset(m, 0, MSG_HEAD);
	memcpy(m, &nh, sizeof(nh));
	memcpy(m + NLMSG_HDRLEN, &ifi, sizeof(ifi));
	memcpy(m + MSG_HEAD - NLA_HDRLEN, &list, sizeof(list));
}

static void entry_template(uint8_t tmpl[VF_INFO_LEN])
{
	struct nlattr info = { .nla_len = VF_INFO_LEN, .nla_type = IFLA_VF_INFO };
	struct nlattr attr = { .nla_len = NLA_HDRLEN + sizeof(struct ifla_vf_mac),
			       .nla_type = IFLA_VF_MAC };

	memset(tmpl, 0, VF_INFO_LEN);
	memcpy(tmpl, &info, NLA_HDRLEN);
	memcpy(tmpl + NLA_HDRLEN, &attr, NLA_HDRLEN);
}

static size_t msgs_of(const struct plan *p, uint32_t count)
{
	return (count + p->per_msg - 1) / p->per_msg;
}

static int plan_alloc(struct vfm_sock *s, struct plan *p, size_t n)
{
	size_t bytes = 0;

	p->nmsg = 0;
	for (size_t j = 0; j < p->njobs; p->nmsg += msgs_of(p, p->jobs[j].count), j++)
		bytes += msgs_of(p, p->jobs[j].count) * MSG_HEAD;
	bytes += n * VF_INFO_LEN;
	p->buf = vfm_sock_tx(s, bytes ? bytes : 1); /* reused: no page faults on every call */
	p->off = calloc(p->nmsg + 1, sizeof(*p->off));
	p->job_of = calloc(p->nmsg + 1, sizeof(*p->job_of));
	p->job_start = calloc(p->njobs + 1, sizeof(*p->job_start));
	return p->buf && p->off && p->job_of && p->job_start ? 0 : -ENOMEM;
}

static void plan_free(struct plan *p)
{
	free(p->off);
	free(p->job_of);
	free(p->job_start);
}

/* Parse and encode every entry; -ERANGE / -EINVAL with *bad at the first entry whose VF index
 * is over VFM_VF_MAX / whose MAC does not parse. */
static int plan_encode(struct plan *p, const char *text, size_t len, size_t n, size_t *bad)
{
	uint8_t tmpl[VF_INFO_LEN];
	size_t pos = 0, m = 0, at = 0;

	entry_template(tmpl);
	for (uint32_t j = 0; j < p->njobs; j++) {
		uint32_t left = p->jobs[j].count;

		p->job_start[j] = (uint32_t)pos;
		for (; left; m++) {
			uint32_t count = left < p->per_msg ? left : p->per_msg;
			uint8_t *e = p->buf + at + MSG_HEAD;

			p->off[m] = at;
			p->job_of[m] = j;
			put_head(p->buf + at, p->jobs[j].ifindex, count, 0);
			for (uint32_t i = 0; i < count; i++, pos++, e += VF_INFO_LEN) {
				uint32_t vf = entry_vf(p, j, pos);

				if (vf > VFM_VF_MAX) {
					*bad = pos;
					return -ERANGE;
				}
				memcpy(e, tmpl, VF_INFO_LEN);
				memcpy(e + VF_OFF, &vf, sizeof(vf));
				if (!parse_entry(text, len, pos, n, e + MAC_OFF)) {
					*bad = pos;
					return -EINVAL;
				}
			}
			at += MSG_HEAD + (size_t)count * VF_INFO_LEN;
			left -= count;
		}
	}
	p->off[m] = at;
	return 0;
}

/* ---- sending ---- */

static int send_all(struct vfm_sock *s, struct plan *p, struct vfm_inflight *fl)
{
	size_t base = 0;
	int err;

	for (size_t m = 0; m < p->nmsg; m++) {
		uint8_t *msg = p->buf + p->off[m];
		struct nlmsghdr *nh = (struct nlmsghdr *)msg;
		uint32_t seq = ++s->seq;

		memcpy(&nh->nlmsg_seq, &seq, sizeof(seq));
		fl[m].seq = seq;
		fl[m].err = VFM_PENDING;
		fl[m].msg[0] = 0;
		err = vfm_sock_send(s, msg, p->off[m + 1] - p->off[m]);
		if (err)
			return err;
		if (m + 1 - base == VFM_WINDOW) {
			err = vfm_collect_acks(s, fl + base, m + 1 - base);
			if (err)
				return err;
			base = m + 1;
		}
	}
	return vfm_collect_acks(s, fl + base, p->nmsg - base);
}

/* ---- the refused messages: the general path, failures into the report ---- */

static int report_add(struct vfm_mac_report *r, size_t pos, int32_t err, uint32_t attempts,
		      const char *msg)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct vfm_mac_failure *f = realloc(r->fail, cap * sizeof(*f));

		if (!f)
			return -ENOMEM;
		r->fail = f;
		r->cap = cap;
	}
	r->fail[r->n].pos = (uint32_t)pos;
	r->fail[r->n].err = err;
	r->fail[r->n].attempts = attempts;
	vfm_set_msg(r->fail[r->n].msg, sizeof(r->fail[r->n].msg), msg);
	r->n++;
	return 0;
}

/* The entries of message m, as changes for the general path. */
static struct vfm_vf_change *msg_changes(const struct plan *p, size_t m, uint32_t count)
{
	struct vfm_vf_change *ch = calloc(count, sizeof(*ch));
	const uint8_t *e = p->buf + p->off[m] + MSG_HEAD;

	for (uint32_t i = 0; ch && i < count; i++, e += VF_INFO_LEN) {
		ch[i].ifindex = p->jobs[p->job_of[m]].ifindex;
		memcpy(&ch[i].vf, e + VF_OFF, sizeof(ch[i].vf));
		ch[i].set = VFM_SET_MAC;
		memcpy(ch[i].mac, e + MAC_OFF, sizeof(ch[i].mac));
	}
	return ch;
}

static int resolve_msg(struct vfm_sock *s, const struct plan *p, size_t m,
		       const struct vfm_inflight *f, const struct vfm_batch_opts *opts,
		       struct vfm_mac_report *r)
{
	uint32_t count = (uint32_t)((p->off[m + 1] - p->off[m] - MSG_HEAD) / VF_INFO_LEN);
	size_t first = f->first;
	struct vfm_vf_change *ch = msg_changes(p, m, count);
	struct vfm_vf_result *res = calloc(count, sizeof(*res));
	int err = ch && res ? 0 : -ENOMEM;

	if (!err)
		err = vfm_vf_resolve_refused(s, ch, count, opts, res, f);
	for (uint32_t i = 0; err > 0 && i < count; i++)
		if (res[i].err && report_add(r, first + i, res[i].err, res[i].attempts,
					     res[i].msg) < 0)
			err = -ENOMEM;
	free(ch);
	free(res);
	return err < 0 ? err : 0;
}

static int resolve_refused(struct vfm_sock *s, const struct plan *p,
			   const struct vfm_inflight *fl, const struct vfm_batch_opts *opts,
			   struct vfm_mac_report *r)
{
	int err = 0;

	for (size_t m = 0; !err && m < p->nmsg; m++)
		if (fl[m].err)
			err = resolve_msg(s, p, m, &fl[m], opts, r);
	return err;
}

/* ---- checks before anything is sent ---- */

/* Fill in the ifindex (from the name) or the name (from the ifindex): one ioctl. */
static int resolve_job(const struct vfm_sock *s, struct vfm_mac_job *job)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	if (job->ifindex > 0) {
		ifr.ifr_ifindex = job->ifindex;
		if (ioctl(s->fd, SIOCGIFNAME, &ifr) < 0)
			return -errno;
		memcpy(job->name, ifr.ifr_name, sizeof(job->name));
		job->name[sizeof(job->name) - 1] = 0;
		return 0;
	}
	if (!job->name[0] || memchr(job->name, 0, sizeof(job->name)) == NULL)
		return -ENODEV;
	memcpy(ifr.ifr_name, job->name, sizeof(job->name));
	if (ioctl(s->fd, SIOCGIFINDEX, &ifr) < 0)
		return -errno;
	job->ifindex = ifr.ifr_ifindex;
	return 0;
}

static int resolve_jobs(const struct vfm_sock *s, struct vfm_mac_job *jobs, size_t njobs,
			size_t *total, size_t *bad)
{
	*total = 0;
	for (size_t j = 0; j < njobs; j++) {
		int err = resolve_job(s, &jobs[j]);

		if (err) {
			*bad = j;
			return err == -ENXIO ? -ENODEV : err;
		}
		*total += jobs[j].count;
	}
	return 0;
}

/* ---- the entry point ---- */

static int run_plan(struct vfm_sock *s, struct plan *p, const struct vfm_batch_opts *opts,
		    struct vfm_mac_report *r)
{
	struct vfm_inflight *fl = calloc(p->nmsg, sizeof(*fl));
	size_t pos = 0;
	int err = fl ? 0 : -ENOMEM;

	for (size_t m = 0; !err && m < p->nmsg; m++) {
		fl[m].first = (uint32_t)pos;
		pos += (p->off[m + 1] - p->off[m] - MSG_HEAD) / VF_INFO_LEN;
	}
	if (!err)
		err = send_all(s, p, fl);
	if (!err)
		err = resolve_refused(s, p, fl, opts, r);
	free(fl);
	return err;
}

void vfm_mac_report_free(struct vfm_mac_report *r)
{
	if (!r)
		return;
	free(r->fail);
	free(r);
}

static uint32_t per_msg(uint32_t max_per_msg)
{
	return max_per_msg && max_per_msg < LIST_MAX_VFS ? max_per_msg : LIST_MAX_VFS;
}

int vfm_set_macs(struct vfm_sock *s, struct vfm_mac_job *jobs, size_t njobs,
		 const uint32_t *vfs, const char *text, size_t textlen,
		 const struct vfm_batch_opts *opts, struct vfm_mac_report **report, size_t *bad)
{
	struct vfm_batch_opts dflt = { 0, 5, 1000 };
	struct plan p = { jobs, njobs, vfs, 0, 0, NULL, NULL, NULL, NULL };
	size_t n = 0, failed;
	int err;

	*report = NULL;
	*bad = 0;
	opts = opts ? opts : &dflt;
	p.per_msg = per_msg(opts->max_per_msg);
	err = resolve_jobs(s, jobs, njobs, &n, bad);
	if (!err && n > UINT32_MAX)
		err = -E2BIG;
	if (!err && n == 0)
		return textlen ? -EINVAL : 0;
	*report = err ? NULL : calloc(1, sizeof(**report));
	if (!err && !*report)
		err = -ENOMEM;
	if (!err)
		err = plan_alloc(s, &p, n);
	if (!err)
		err = plan_encode(&p, text, textlen, n, bad);
	if (!err)
		err = run_plan(s, &p, opts, *report);
	plan_free(&p);
	failed = err || !*report ? 0 : (*report)->n;
	if (failed == 0) {
		vfm_mac_report_free(*report);
		*report = NULL;
	}
	if (err)
		return err;
	return failed > INT32_MAX ? INT32_MAX : (int)failed;
}

int vfm_macs_encode(int32_t ifindex, const uint32_t *vfs, const uint8_t *macs, size_t n,
		    uint32_t max_per_msg, uint32_t seq, uint8_t *buf, size_t buflen, size_t *taken)
{
	uint32_t count = per_msg(max_per_msg);
	uint8_t tmpl[VF_INFO_LEN];
	uint8_t *e = buf + MSG_HEAD;

	*taken = 0;
	count = n < count ? (uint32_t)n : count;
	if (n == 0)
		return -EINVAL;
	if (buflen < MSG_HEAD + (size_t)count * VF_INFO_LEN)
		return -ENOSPC;
	entry_template(tmpl);
	put_head(buf, ifindex, count, seq);
	for (uint32_t i = 0; i < count; i++, e += VF_INFO_LEN) {
		memcpy(e, tmpl, VF_INFO_LEN);
		memcpy(e + VF_OFF, &vfs[i], sizeof(vfs[i]));
		memcpy(e + MAC_OFF, macs + 6 * i, 6);
	}
	*taken = count;
	return (int)(MSG_HEAD + (size_t)count * VF_INFO_LEN);
}
