/* pyvfmac C core: rtnetlink for SR-IOV VF settings.
 *
 * Conventions: functions return 0 (or a count) on success and -errno on failure; nothing here
 * prints, exits or keeps global state. Buffers:
 *  - a buffer the caller passes stays the caller's: it is read or written during the call only,
 *    never kept and never freed;
 *  - a result the core allocates (*out of vfm_links_get / vfm_links_parse, *report of
 *    vfm_set_macs) becomes the caller's, to be freed with the matching *_free function;
 *  - a socket owns a receive buffer (grown to the largest datagram received) and a send buffer
 *    (grown to the largest bulk batch encoded), kept between calls and freed by vfm_sock_close.
 * Where the kernel sends an extended-ACK message it is copied, NUL-terminated, into the caller's
 * errmsg buffer (or result msg field).
 */
#ifndef VFM_NETLINK_H
#define VFM_NETLINK_H

#include <stddef.h>
#include <stdint.h>

#define VFM_MSG_LEN 256
#define VFM_MAC_LEN 32 /* room the kernel gives a VF MAC (struct ifla_vf_mac) */
/* one MAC as text, "aa:bb:cc:dd:ee:ff", and the separator or NUL after it */
#define VFM_MAC_TEXT_LEN 18

/* struct vfm_vf_change.set */
#define VFM_SET_MAC 0x01u
#define VFM_SET_VLAN 0x02u
#define VFM_SET_SPOOFCHK 0x04u
#define VFM_SET_TRUST 0x08u
#define VFM_SET_LINK_STATE 0x10u
#define VFM_SET_RATE 0x20u /* min and max TX rate, always together */

struct vfm_vf_change {
	int32_t ifindex;     /* the PF */
	uint32_t vf;         /* VF index under the PF */
	uint32_t set;        /* VFM_SET_* */
	uint8_t mac[6];
	uint16_t vlan_proto; /* host order: 0x8100 (802.1Q) or 0x88a8 (802.1ad) */
	uint32_t vlan;       /* 0 clears */
	uint32_t qos;
	uint32_t spoofchk;   /* 0 / 1 */
	uint32_t trust;      /* 0 / 1 */
	uint32_t link_state; /* 0 auto, 1 enable, 2 disable */
	uint32_t min_tx_rate;
	uint32_t max_tx_rate;
};

struct vfm_vf_result {
	int32_t err;         /* 0 applied, or -errno */
	uint32_t attempts;   /* RTM_SETLINK requests that carried this VF */
	char msg[VFM_MSG_LEN]; /* kernel extended-ACK text, or "" */
};

struct vfm_batch_opts {
	uint32_t max_per_msg; /* IFLA_VF_INFO entries per RTM_SETLINK; 0: as many as fit */
	uint32_t retries;     /* extra tries per VF on EAGAIN / EBUSY */
	uint32_t backoff_us;  /* first wait; doubles each retry */
};

struct vfm_vf_info {
	uint32_t vf;
	uint8_t mac[VFM_MAC_LEN];
	uint32_t vlan;
	uint32_t qos;
	uint16_t vlan_proto;  /* host order; 0 when the kernel sent no VLAN list */
	int32_t spoofchk;     /* -1: not reported */
	int32_t trust;        /* -1: not reported */
	int32_t link_state;   /* -1: not reported */
	uint32_t min_tx_rate;
	uint32_t max_tx_rate;
};

/* struct vfm_link.vf_list */
#define VFM_VFLIST_NONE 0      /* no IFLA_VFINFO_LIST in the message */
#define VFM_VFLIST_OK 1        /* list read, its length field agreed */
#define VFM_VFLIST_WRAPPED 2   /* list over 64 KiB: length field wrapped, read past it */

struct vfm_link {
	int32_t ifindex;
	uint32_t flags;          /* IFF_* */
	char name[16];
	uint8_t addr[VFM_MAC_LEN];
	uint32_t addr_len;
	uint8_t perm_addr[VFM_MAC_LEN];
	uint32_t perm_addr_len;
	char parent_bus[32];
	char parent_dev[64];
	int32_t num_vf;          /* IFLA_NUM_VF, -1 when absent */
	uint32_t vf_list;        /* VFM_VFLIST_* */
	uint32_t n_vfs;          /* entries in vfs */
	struct vfm_vf_info *vfs;
};

struct vfm_links {
	size_t n;
	struct vfm_link *links;
};

struct vfm_sock;

/* Open a NETLINK_ROUTE socket with send/receive buffers of bufsize bytes (SO_*BUFFORCE when
 * permitted), extended ACKs on where the kernel has them. */
int vfm_sock_open(struct vfm_sock **out, uint32_t bufsize);
void vfm_sock_close(struct vfm_sock *s);

/* Apply n changes; res[i] gets the outcome of ch[i]. Changes for one PF are packed into as few
 * RTM_SETLINK messages as fit (one IFLA_VFINFO_LIST each, never over 64 KiB), all sent before any
 * ACK is read. A failed message is resolved per VF: the PF's VFs are read back; the entries before
 * the first one not in its requested state are applied; that one and the rest are sent one per
 * message, with retries on EAGAIN / EBUSY. Returns 0 when every change applied, the number of
 * failed changes (> 0) otherwise, or -errno when the socket itself failed (res then undefined). */
int vfm_vf_apply(struct vfm_sock *s, const struct vfm_vf_change *ch, size_t n,
		 const struct vfm_batch_opts *opts, struct vfm_vf_result *res);

/* Encode one RTM_SETLINK carrying ch[0..k) (all for ch[0].ifindex) into buf; *taken = k: what
 * vfm_vf_apply sends first. Returns the message length, or -ENOSPC / -EINVAL. For tests and
 * benchmarks. */
int vfm_vf_encode(const struct vfm_vf_change *ch, size_t n, uint32_t max_per_msg, uint32_t seq,
		  uint8_t *buf, size_t buflen, size_t *taken);

/* ---- the bulk MAC path (vfm_macs.c): many VFs of one PF, admin MAC only ---- */
#define VFM_VF_MAX 0x7ffffffeu /* the largest VF index accepted */

struct vfm_mac_failure {
	uint32_t pos;          /* the entry's position in the input */
	int32_t err;           /* -errno */
	uint32_t attempts;     /* requests that carried it */
	char msg[VFM_MSG_LEN]; /* kernel extended-ACK text, or "" */
};

struct vfm_mac_report {
	size_t n; /* failed entries */
	size_t cap;
	struct vfm_mac_failure *fail;
};

/* n canonical MACs ("aa:bb:cc:dd:ee:ff", lowercase, unicast, not all-zero) joined by '\n',
 * no trailing newline, into 6 bytes each. -EINVAL with *bad = the first entry that is not. */
int vfm_macs_parse(const char *text, size_t len, size_t n, uint8_t *out, size_t *bad);

/* Give VFs of one or more PFs their admin MACs. jobs[j] (in: ifindex > 0, or 0 and the name;
 * out: both) holds the next jobs[j].count entries; entry i is VF vfs[i] (with vfs NULL: its
 * position within its job) and the i-th MAC of text (as vfm_macs_parse). Every entry is
 * checked first, then every PF's messages go out pipelined; the VFs of a refused message get
 * their exact outcome by the general path's resolution. Returns the number of failed entries (then
 * *report lists them; free it with vfm_mac_report_free), or -errno with nothing sent:
 * -ENODEV (*bad: the job), -ERANGE (*bad: the entry whose VF index is over VFM_VF_MAX),
 * -EINVAL (*bad: the entry whose MAC does not parse), or an error of the socket. */
struct vfm_mac_job {
	int32_t ifindex;
	char name[16];
	uint32_t count;
};
int vfm_set_macs(struct vfm_sock *s, struct vfm_mac_job *jobs, size_t njobs,
		 const uint32_t *vfs, const char *text, size_t textlen,
		 const struct vfm_batch_opts *opts, struct vfm_mac_report **report, size_t *bad);
void vfm_mac_report_free(struct vfm_mac_report *r);
/* What vfm_set_macs would send for jobs whose ifindex is set (no lookup here), encoded by its
 * own code: every message, back to back in buf, sequence numbers seq, seq + 1, ... Returns the
 * number of messages, *used = their total length; -ENOSPC (*used: the length needed) when buflen
 * is short; -ERANGE / -EINVAL with *bad as vfm_set_macs. For tests and benchmarks. */
int vfm_macs_encode(const struct vfm_mac_job *jobs, size_t njobs, const uint32_t *vfs,
		    const char *text, size_t textlen, uint32_t max_per_msg, uint32_t seq,
		    uint8_t *buf, size_t buflen, size_t *used, size_t *bad);

/* RTM_GETLINK with RTEXT_FILTER_VF | RTEXT_FILTER_SKIP_STATS: one link (ifindex > 0, or by name
 * when ifindex is 0), or all links (ifindex < 0, a dump; redone when the kernel marks it
 * interrupted). *out is freed with vfm_links_free. */
int vfm_links_get(struct vfm_sock *s, int32_t ifindex, const char *name, struct vfm_links **out,
		  char *errmsg, size_t errlen);
void vfm_links_free(struct vfm_links *l);

/* Parse netlink messages (RTM_NEWLINK; NLMSG_DONE ends) from buf[0..len) as received. Never reads
 * outside the buffer; -EBADMSG on a message that does not hold together. */
int vfm_links_parse(const uint8_t *buf, size_t len, struct vfm_links **out);

/* The first 6 bytes of each VF's MAC as text, "aa:bb:cc:dd:ee:ff" joined by '\n' and
 * NUL-terminated: out has room for VFM_MAC_TEXT_LEN * n bytes. */
void vfm_vfs_mac_text(const struct vfm_vf_info *vfs, size_t n, char *out);

/* RTM_SETLINK IFLA_ADDRESS: a netdev's own MAC (a VF netdev held by a host driver). */
int vfm_link_set_addr(struct vfm_sock *s, int32_t ifindex, const uint8_t *addr, size_t len,
		      char *errmsg, size_t errlen);

/* 802.1Qbh port profile for a VF: RTM_SETLINK IFLA_VF_PORTS { IFLA_VF_PORT { IFLA_PORT_* } }. */
#define VFM_PORT_REQUEST_ASSOCIATE 2
#define VFM_PORT_REQUEST_DISASSOCIATE 3
struct vfm_port_req {
	int32_t ifindex;
	uint32_t vf;
	uint8_t request;          /* VFM_PORT_REQUEST_* */
	char profile[40];         /* PORT_PROFILE_MAX */
	uint8_t instance_uuid[16];
	uint8_t host_uuid[16];
	uint8_t has_instance_uuid;
	uint8_t has_host_uuid;
};
int vfm_vf_port_encode(const struct vfm_port_req *req, uint32_t seq, uint8_t *buf, size_t buflen);
int vfm_vf_port_set(struct vfm_sock *s, const struct vfm_port_req *req, char *errmsg,
		    size_t errlen);

#endif
