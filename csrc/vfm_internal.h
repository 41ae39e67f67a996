/* pyvfmac C core: declarations shared between the core's files (not part of the API). */
#ifndef VFM_INTERNAL_H
#define VFM_INTERNAL_H

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* ---- message building (vfm_attr.c): the caller owns buf; every put is bounds-checked ---- */
struct vfm_buf {
	uint8_t *p;
	size_t cap;
	size_t len;
};

int vfm_buf_msg_start(struct vfm_buf *b, uint16_t type, uint16_t flags, uint32_t seq);
void vfm_buf_msg_end(struct vfm_buf *b);
void *vfm_buf_reserve(struct vfm_buf *b, size_t len);
int vfm_attr_put(struct vfm_buf *b, uint16_t type, const void *data, size_t len);
int vfm_attr_put_u32(struct vfm_buf *b, uint16_t type, uint32_t v);
int vfm_attr_put_u8(struct vfm_buf *b, uint16_t type, uint8_t v);
int vfm_attr_put_str(struct vfm_buf *b, uint16_t type, const char *s);
/* nests: start returns the nest's offset (or -ENOSPC); end fails with -EMSGSIZE past 64 KiB */
long vfm_nest_start(struct vfm_buf *b, uint16_t type);
int vfm_nest_end(struct vfm_buf *b, long off);
void vfm_nest_cancel(struct vfm_buf *b, long off);
int vfm_ifinfo_put(struct vfm_buf *b, int32_t ifindex);

/* ---- attribute walking: never reads outside [cur, end) ---- */
/* The attribute at *cur if its header and payload fit before end, else NULL (and *bad set when
 * bytes remain that do not form an attribute). Advances *cur past it (aligned, clamped to end). */
const struct nlattr *vfm_attr_next(const uint8_t **cur, const uint8_t *end, bool *bad);
static inline const void *vfm_attr_data(const struct nlattr *a) { return (const uint8_t *)a + NLA_HDRLEN; }
static inline size_t vfm_attr_len(const struct nlattr *a) { return a->nla_len - NLA_HDRLEN; }
static inline uint16_t vfm_attr_type(const struct nlattr *a) { return a->nla_type & NLA_TYPE_MASK; }
void vfm_copy_str(char *dst, size_t dstlen, const struct nlattr *a);

/* ---- socket I/O (vfm_nl.c) ---- */
int vfm_sock_send(struct vfm_sock *s, const void *buf, size_t len);
/* The socket's send buffer with room for need bytes (grown, never shrunk), or NULL. */
uint8_t *vfm_sock_tx(struct vfm_sock *s, size_t need);
/* Receive one datagram into s->rx; returns its length or -errno. */
long vfm_sock_recv(struct vfm_sock *s);
/* Walk the netlink messages of a datagram: the next complete message or NULL. */
const struct nlmsghdr *vfm_msg_next(const uint8_t **cur, const uint8_t *end, bool *bad);
/* An NLMSG_ERROR message: its error (0 for an ACK, -errno) and the extended-ACK text. */
int vfm_msg_error(const struct nlmsghdr *h, char *msg, size_t msglen);
/* Receive one datagram and hand each complete message to fn, which returns 0 to go on; a
 * non-zero return stops the walk and is returned. -errno on a receive or framing error. */
typedef int (*vfm_msg_fn)(const struct vfm_sock *s, const struct nlmsghdr *h, void *arg);
int vfm_recv_msgs(struct vfm_sock *s, vfm_msg_fn fn, void *arg);
/* The same for replies that are only ACKs (NETLINK_CAP_ACK: small): one receive call each. */
int vfm_recv_acks(struct vfm_sock *s, vfm_msg_fn fn, void *arg);
/* Send one request (NLM_F_ACK set by the caller) and wait for its ACK. */
int vfm_request(struct vfm_sock *s, struct vfm_buf *b, char *errmsg, size_t errlen);
void vfm_set_msg(char *dst, size_t dstlen, const char *src);

/* ---- link parsing (vfm_state.c) ---- */
int vfm_links_add_msg(struct vfm_links *l, const struct nlmsghdr *h);
struct vfm_links *vfm_links_new(void);

/* ---- batched requests (vfm_batch.c) ---- */
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
/* vfm_vf_apply for ch[0..n) (one PF, in order) that were sent as one message, refused as
 * *refused says: the leading entries the kernel applied are found by read-back, the rest are
 * resent one per message (with retries); attempts count the refused message. */
int vfm_vf_resolve_refused(struct vfm_sock *s, const struct vfm_vf_change *ch, size_t n,
			   const struct vfm_batch_opts *opts, struct vfm_vf_result *res,
			   const struct vfm_inflight *refused);
bool vfm_change_matches(const struct vfm_vf_change *c, const struct vfm_vf_info *vi);

#endif
