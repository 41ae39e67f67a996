/* pyvfmac C core: declarations shared between the core's files (not part of the API). */
#ifndef VFM_INTERNAL_H
#define VFM_INTERNAL_H

#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vfm_netlink.h"

struct vfm_sock {
	int fd;
	uint32_t portid;
	uint32_t seq;     /* last sequence number used */
	uint8_t *rx;      /* receive buffer, grown to the largest datagram seen */
	size_t rx_cap;
	bool cap_ack;     /* NETLINK_CAP_ACK on: ACKs are small */
	uint8_t *tx;      /* bulk requests being sent, kept (mapped) for the next call */
	size_t tx_cap;
};

/* ---- messages and attributes (vfm_msg.c): the caller owns buf; every put is bounds-checked ---- */
struct vfm_buf {
	uint8_t *p;
	size_t cap;
	size_t len;
};

int vfm_buf_msg_start(struct vfm_buf *b, uint16_t type, uint16_t flags, uint32_t seq);
void vfm_buf_msg_end(struct vfm_buf *b);
/* Room for len bytes (aligned): zeroed by reserve; by claim not, for a caller that writes all. */
void *vfm_buf_reserve(struct vfm_buf *b, size_t len);
void *vfm_buf_claim(struct vfm_buf *b, size_t len);
int vfm_attr_put(struct vfm_buf *b, uint16_t type, const void *data, size_t len);
int vfm_attr_put_u32(struct vfm_buf *b, uint16_t type, uint32_t v);
int vfm_attr_put_u8(struct vfm_buf *b, uint16_t type, uint8_t v);
int vfm_attr_put_str(struct vfm_buf *b, uint16_t type, const char *s);
/* nests: start returns the nest's offset (or -ENOSPC); end fails with -EMSGSIZE past 64 KiB */
long vfm_nest_start(struct vfm_buf *b, uint16_t type);
int vfm_nest_end(struct vfm_buf *b, long off);
void vfm_nest_cancel(struct vfm_buf *b, long off);
int vfm_ifinfo_put(struct vfm_buf *b, int32_t ifindex);

/* ---- walking messages and attributes (vfm_msg.c): never reads outside [cur, end) ---- */
/* The next complete netlink message of a datagram, or NULL (and *bad set on a broken one). */
const struct nlmsghdr *vfm_msg_next(const uint8_t **cur, const uint8_t *end, bool *bad);
/* The attribute at *cur if its header and payload fit before end, else NULL (and *bad set when
 * bytes remain that do not form an attribute). Advances *cur past it (aligned, clamped to end). */
const struct nlattr *vfm_attr_next(const uint8_t **cur, const uint8_t *end, bool *bad);
static inline const void *vfm_attr_data(const struct nlattr *a) { return (const uint8_t *)a + NLA_HDRLEN; }
static inline size_t vfm_attr_len(const struct nlattr *a) { return a->nla_len - NLA_HDRLEN; }
static inline uint16_t vfm_attr_type(const struct nlattr *a) { return a->nla_type & NLA_TYPE_MASK; }
void vfm_copy_str(char *dst, size_t dstlen, const struct nlattr *a);
void vfm_set_msg(char *dst, size_t dstlen, const char *src);

/* ---- the socket (vfm_socket.c) ---- */
int vfm_sock_send(struct vfm_sock *s, const void *buf, size_t len);
/* The socket's send buffer with room for need bytes (grown, never shrunk), or NULL. */
uint8_t *vfm_sock_tx(struct vfm_sock *s, size_t need);
/* Receive one datagram into s->rx, sized first; returns its length or -errno. */
long vfm_sock_recv(struct vfm_sock *s);
/* The same in one call for a datagram expected small (an ACK); one that does not fit is dropped
 * (returns 0, as if empty). */
long vfm_sock_recv_small(struct vfm_sock *s);

/* ---- replies: ACKs and errors (vfm_ack.c) ---- */
/* An NLMSG_ERROR message: its error (0 for an ACK, -errno) and the extended-ACK text. */
int vfm_msg_error(const struct nlmsghdr *h, char *msg, size_t msglen);
/* An NLMSG_ERROR where data was expected: its error, or -EBADMSG for a bare ACK. */
int vfm_msg_error_reply(const struct nlmsghdr *h, char *msg, size_t msglen);
/* Receive one datagram and hand each complete message to fn, which returns 0 to go on; a
 * non-zero return stops the walk and is returned. -errno on a receive or framing error. */
typedef int (*vfm_msg_fn)(const struct vfm_sock *s, const struct nlmsghdr *h, void *arg);
int vfm_recv_msgs(struct vfm_sock *s, vfm_msg_fn fn, void *arg);
/* The same for replies that are only ACKs (NETLINK_CAP_ACK: small): one receive call each. */
int vfm_recv_acks(struct vfm_sock *s, vfm_msg_fn fn, void *arg);
/* Send one request (NLM_F_ACK set by the caller) and wait for its ACK. */
int vfm_request(struct vfm_sock *s, struct vfm_buf *b, char *errmsg, size_t errlen);

#define VFM_NEST_MAX 65535u /* a nested attribute's 16-bit length */
#define VFM_WINDOW 512u     /* requests in flight before ACKs are read */
#define VFM_PENDING 1       /* an error field while undecided */

/* One RTM_SETLINK in flight: entries first .. first + count of the caller's order. */
struct vfm_inflight {
	uint32_t seq;
	uint32_t first;
	uint32_t count;
	int32_t err;
	char msg[VFM_MSG_LEN];
};

/* Read ACKs until every request of fl[0..nfl) (consecutive seqs, err VFM_PENDING) is answered. */
int vfm_collect_acks(struct vfm_sock *s, struct vfm_inflight *fl, size_t nfl);

/* ---- link parsing (vfm_link_parse.c) ---- */
int vfm_links_add_msg(struct vfm_links *l, const struct nlmsghdr *h);
struct vfm_links *vfm_links_new(void);

/* ---- THE VF encoder (vfm_vf_encode.c) ---- */
/* One IFLA_VF_INFO for c: its MAC, VLAN, rate, spoofchk, link state and trust as c->set says.
 * On failure (-ENOSPC, -EMSGSIZE) b is left as it was. */
int vfm_vf_put(struct vfm_buf *b, const struct vfm_vf_change *c);
/* RTM_SETLINK (request, ACK) for ifindex with its IFLA_VFINFO_LIST opened: the list's offset for
 * vfm_vf_msg_end, or -ENOSPC. */
long vfm_vf_msg_start(struct vfm_buf *b, int32_t ifindex, uint32_t seq);
/* Close the list (-EMSGSIZE past 64 KiB) and the message. */
int vfm_vf_msg_end(struct vfm_buf *b, long list);
/* One RTM_SETLINK carrying entries idx[0..n) (identity when idx is NULL) of ch, as many as fit
 * (at most max_per_msg when not 0) of the first one's PF; *taken = how many. The length, or
 * -ENOSPC / -errno. */
int vfm_vf_encode_run(const struct vfm_vf_change *ch, const uint32_t *idx, size_t n,
		      uint32_t max_per_msg, uint32_t seq, struct vfm_buf *b, size_t *taken);

/* The fixed shape of a MAC-only change's IFLA_VF_INFO (the bulk path's entries) and of the head
 * vfm_vf_msg_start writes. */
#define VFM_VF_MSG_HEAD (NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct ifinfomsg)) + NLA_HDRLEN)
#define VFM_VF_MAC_INFO_LEN (2u * NLA_HDRLEN + (uint32_t)sizeof(struct ifla_vf_mac))
#define VFM_VF_MAC_INFO_VF (2u * NLA_HDRLEN + offsetof(struct ifla_vf_mac, vf))
#define VFM_VF_MAC_INFO_MAC (2u * NLA_HDRLEN + offsetof(struct ifla_vf_mac, mac))
/* vfm_vf_put of a MAC-only change (VF 0, MAC zero) into tmpl: 0, or -EPROTO when its shape is
 * not the one above. */
int vfm_vf_mac_template(uint8_t tmpl[VFM_VF_MAC_INFO_LEN]);
/* The fast append of the same entry: tmpl stamped at e with VF vf; returns where its MAC goes. */
static inline uint8_t *vfm_vf_put_mac_at(uint8_t *e, const uint8_t *tmpl, uint32_t vf)
{
	memcpy(e, tmpl, VFM_VF_MAC_INFO_LEN);
	memcpy(e + VFM_VF_MAC_INFO_VF, &vf, sizeof(vf));
	return e + VFM_VF_MAC_INFO_MAC;
}

/* ---- batched requests (vfm_batch.c) ---- */
/* vfm_vf_apply for ch[0..n) (one PF, in order) that were sent as one message, refused as
 * *refused says: the leading entries the kernel applied are found by read-back, the rest are
 * resent one per message (with retries); attempts count the refused message. */
int vfm_vf_resolve_refused(struct vfm_sock *s, const struct vfm_vf_change *ch, size_t n,
			   const struct vfm_batch_opts *opts, struct vfm_vf_result *res,
			   const struct vfm_inflight *refused);
bool vfm_change_matches(const struct vfm_vf_change *c, const struct vfm_vf_info *vi);

/* ---- MAC text (vfm_mac_text.c) ---- */
/* "aa:bb:cc:dd:ee:ff" (lowercase) into p[0..17), then sep at p[17] (VFM_MAC_TEXT_LEN in all). */
void vfm_mac_format(char *p, const uint8_t *mac, char sep);

#endif
