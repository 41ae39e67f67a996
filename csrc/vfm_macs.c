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
/* Every entry is a MAC-only IFLA_VF_INFO of THE encoder (vfm_vf_encode.c): fixed size. */
#define VF_INFO_LEN VFM_VF_MAC_INFO_LEN
#define MSG_HEAD VFM_VF_MSG_HEAD
#define LIST_MAX_VFS ((VFM_NEST_MAX - NLA_HDRLEN) / VF_INFO_LEN)

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
		/* unsigned: a non-digit (0) must not shift a negative value */
		out[i] = (uint8_t)((hi - 1u) << 4 | (lo - 1u));
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
	const char *text;       /* the MACs, as vfm_macs_parse */
	size_t textlen;
	size_t n;               /* entries */
	uint32_t per_msg;
	size_t nmsg;
	size_t bytes;           /* of all messages */
	uint8_t *buf;           /* the messages, back to back */
	size_t *off;            /* message m starts at buf + off[m] */
	uint32_t *job_of;       /* message m belongs to jobs[job_of[m]] */
	uint32_t *job_start;    /* first entry (global position) of each job */
};

static uint32_t entry_vf(const struct plan *p, uint32_t job, size_t pos)
{
	return p->vfs ? p->vfs[pos] : (uint32_t)(pos - p->job_start[job]);
}

static size_t msgs_of(const struct plan *p, uint32_t count)
{
	return (count + p->per_msg - 1) / p->per_msg;
}

/* How many messages, how many bytes. */
static void plan_size(struct plan *p)
{
	p->nmsg = 0;
	for (size_t j = 0; j < p->njobs; j++)
		p->nmsg += msgs_of(p, p->jobs[j].count);
	p->bytes = p->nmsg * MSG_HEAD + p->n * VF_INFO_LEN;
}

static int plan_index(struct plan *p)
{
	p->off = calloc(p->nmsg + 1, sizeof(*p->off));
	p->job_of = calloc(p->nmsg + 1, sizeof(*p->job_of));
	p->job_start = calloc(p->njobs + 1, sizeof(*p->job_start));
	return p->off && p->job_of && p->job_start ? 0 : -ENOMEM;
}

static void plan_free(struct plan *p)
{
	free(p->off);
	free(p->job_of);
	free(p->job_start);
}

/* Job j's count entries from entry pos on, as one message at buf + at; -ERANGE / -EINVAL with
 * *bad at the first entry whose VF index is over VFM_VF_MAX / whose MAC does not parse. */
static int encode_msg(const struct plan *p, const uint8_t *tmpl, uint32_t j, size_t pos,
		      uint32_t count, size_t at, size_t *bad)
{
	struct vfm_buf b = { p->buf + at, p->bytes - at, 0 };
	long list = vfm_vf_msg_start(&b, p->jobs[j].ifindex, 0);
	const char *text = p->text; /* locals: the stores below may alias *p */
	size_t len = p->textlen, n = p->n;
	uint8_t *e;

	if (list < 0)
		return (int)list;
	e = vfm_buf_claim(&b, (size_t)count * VF_INFO_LEN);
	if (!e)
		return -ENOSPC;
	for (uint32_t i = 0; i < count; i++, pos++, e += VF_INFO_LEN) {
		uint32_t vf = entry_vf(p, j, pos);

		if (vf > VFM_VF_MAX) {
			*bad = pos;
			return -ERANGE;
		}
		if (!parse_entry(text, len, pos, n, vfm_vf_put_mac_at(e, tmpl, vf))) {
			*bad = pos;
			return -EINVAL;
		}
	}
	return vfm_vf_msg_end(&b, list);
}

/* Parse and encode every entry, in order (errors as encode_msg). */
static int plan_encode(struct plan *p, size_t *bad)
{
	uint8_t tmpl[VF_INFO_LEN];
	size_t pos = 0, m = 0, at = 0;
	int err = vfm_vf_mac_template(tmpl);

	for (uint32_t j = 0; !err && j < p->njobs; j++) {
		p->job_start[j] = (uint32_t)pos;
		for (uint32_t left = p->jobs[j].count; !err && left; m++) {
			uint32_t count = left < p->per_msg ? left : p->per_msg;

			p->off[m] = at;
			p->job_of[m] = j;
			err = encode_msg(p, tmpl, j, pos, count, at, bad);
			at += MSG_HEAD + (size_t)count * VF_INFO_LEN;
			pos += count;
			left -= count;
		}
	}
	p->off[m] = at;
	return err;
}

static void msg_set_seq(uint8_t *msg, uint32_t seq)
{
	memcpy(msg + offsetof(struct nlmsghdr, nlmsg_seq), &seq, sizeof(seq));
}

/* ---- sending ---- */

static int send_all(struct vfm_sock *s, struct plan *p, struct vfm_inflight *fl)
{
	size_t base = 0;
	int err;

	for (size_t m = 0; m < p->nmsg; m++) {
		uint8_t *msg = p->buf + p->off[m];

		fl[m].seq = ++s->seq;
		msg_set_seq(msg, fl[m].seq);
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
		memcpy(&ch[i].vf, e + VFM_VF_MAC_INFO_VF, sizeof(ch[i].vf));
		ch[i].set = VFM_SET_MAC;
		memcpy(ch[i].mac, e + VFM_VF_MAC_INFO_MAC, sizeof(ch[i].mac));
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

static struct plan plan_new(const struct vfm_mac_job *jobs, size_t njobs, const uint32_t *vfs,
			    const char *text, size_t textlen, const struct vfm_batch_opts *opts)
{
	struct plan p = { .jobs = jobs, .njobs = njobs, .vfs = vfs, .text = text,
			  .textlen = textlen, .per_msg = per_msg(opts->max_per_msg) };

	return p;
}

/* The plan's messages in the socket's send buffer (reused: no page faults on every call),
 * sent; the refused ones resolved into *report. */
static int set_macs_run(struct vfm_sock *s, struct plan *p, const struct vfm_batch_opts *opts,
			struct vfm_mac_report *report, size_t *bad)
{
	int err;

	plan_size(p);
	p->buf = vfm_sock_tx(s, p->bytes);
	err = p->buf ? plan_index(p) : -ENOMEM;
	if (!err)
		err = plan_encode(p, bad);
	if (!err)
		err = run_plan(s, p, opts, report);
	plan_free(p);
	return err;
}

int vfm_set_macs(struct vfm_sock *s, struct vfm_mac_job *jobs, size_t njobs,
		 const uint32_t *vfs, const char *text, size_t textlen,
		 const struct vfm_batch_opts *opts, struct vfm_mac_report **report, size_t *bad)
{
	struct vfm_batch_opts dflt = { 0, 5, 1000 };
	struct plan p = plan_new(jobs, njobs, vfs, text, textlen, opts ? opts : &dflt);
	size_t failed;
	int err;

	*report = NULL;
	*bad = 0;
	err = resolve_jobs(s, jobs, njobs, &p.n, bad);
	if (!err && p.n > UINT32_MAX)
		err = -E2BIG;
	if (!err && p.n == 0)
		return textlen ? -EINVAL : 0;
	*report = err ? NULL : calloc(1, sizeof(**report));
	if (!err && !*report)
		err = -ENOMEM;
	if (!err)
		err = set_macs_run(s, &p, opts ? opts : &dflt, *report, bad);
	failed = err || !*report ? 0 : (*report)->n;
	if (failed == 0) {
		vfm_mac_report_free(*report);
		*report = NULL;
	}
	if (err)
		return err;
	return failed > INT32_MAX ? INT32_MAX : (int)failed;
}

int vfm_macs_encode(const struct vfm_mac_job *jobs, size_t njobs, const uint32_t *vfs,
		    const char *text, size_t textlen, uint32_t max_per_msg, uint32_t seq,
		    uint8_t *buf, size_t buflen, size_t *used, size_t *bad)
{
	struct vfm_batch_opts opts = { max_per_msg, 0, 0 };
	struct plan p = plan_new(jobs, njobs, vfs, text, textlen, &opts);
	int err;

	*used = 0;
	*bad = 0;
	for (size_t j = 0; j < njobs; j++)
		p.n += jobs[j].count;
	if (p.n > UINT32_MAX)
		return -E2BIG;
	if (p.n == 0)
		return textlen ? -EINVAL : 0;
	plan_size(&p);
	*used = p.bytes;
	if (buflen < p.bytes || p.nmsg > INT32_MAX)
		return buflen < p.bytes ? -ENOSPC : -E2BIG;
	p.buf = buf;
	err = plan_index(&p);
	if (!err)
		err = plan_encode(&p, bad);
	for (size_t m = 0; !err && m < p.nmsg; m++)
		msg_set_seq(p.buf + p.off[m], seq + (uint32_t)m);
	plan_free(&p);
	return err ? err : (int)p.nmsg;
}
