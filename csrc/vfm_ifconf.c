/* Network namespaces and a netdev's own configuration: what a CNI plugin does to a VF netdev
 * (move into a pod's namespace, rename, MTU, address, up/down, IP addresses and routes). */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <net/if.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vfm_ifconf.h"
#include "vfm_internal.h"

/* Enter the network namespace nsfd; *home keeps the thread's own to come back to. */
static int netns_enter(int nsfd, int *home)
{
	int err;

	*home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (*home < 0)
		return -errno;
	if (setns(nsfd, CLONE_NEWNET) < 0) {
		err = -errno;
		(void)close(*home);
		return err;
	}
	return 0;
}

/* Back to the thread's own namespace: 0, or -ENOTRECOVERABLE (the thread is stuck outside). */
static int netns_leave(int home)
{
	int back = setns(home, CLONE_NEWNET);

	(void)close(home);
	return back < 0 ? -ENOTRECOVERABLE : 0;
}

int vfm_sock_open_netns(struct vfm_sock **out, uint32_t bufsize, int nsfd)
{
	int home, err;

	*out = NULL;
	if (nsfd < 0)
		return vfm_sock_open(out, bufsize);
	err = netns_enter(nsfd, &home);
	if (err < 0)
		return err;
	err = vfm_sock_open(out, bufsize); /* a socket stays in the namespace it was made in */
	if (netns_leave(home) < 0) {
		vfm_sock_close(*out);
		*out = NULL;
		return -ENOTRECOVERABLE;
	}
	return err;
}

/* Leave the namespace after making fd (or -errno) in it: fd, the error, or -ENOTRECOVERABLE
 * (then fd is closed: the thread is stuck outside its namespace). */
static int netns_leave_with(int home, int fd)
{
	if (netns_leave(home) < 0) {
		if (fd >= 0)
			(void)close(fd);
		return -ENOTRECOVERABLE;
	}
	return fd;
}

int vfm_netns_socket(int nsfd, int domain, int type, int protocol)
{
	int home, fd, err = netns_enter(nsfd, &home);

	if (err < 0)
		return err;
	fd = socket(domain, type | SOCK_CLOEXEC, protocol);
	return netns_leave_with(home, fd < 0 ? -errno : fd);
}

int vfm_netns_open(int nsfd, const char *path, int flags)
{
	int home, fd, err = netns_enter(nsfd, &home);

	if (err < 0)
		return err;
	fd = open(path, flags | O_CLOEXEC); /* /proc/sys/net is the opener's namespace's */
	return netns_leave_with(home, fd < 0 ? -errno : fd);
}

static int ifinfo_put(struct vfm_buf *b, const struct vfm_link_conf *c)
{
	struct ifinfomsg *ifi = vfm_buf_reserve(b, sizeof(*ifi));

	if (!ifi)
		return -ENOSPC;
	ifi->ifi_index = c->ifindex;
	if (c->up >= 0) {
		ifi->ifi_change = IFF_UP;
		ifi->ifi_flags = c->up ? IFF_UP : 0;
	}
	return 0;
}

int vfm_link_conf_set(struct vfm_sock *s, const struct vfm_link_conf *c, char *errmsg,
		      size_t errlen)
{
	uint8_t req[512];
	struct vfm_buf b = { req, sizeof(req), 0 };
	size_t namelen = strnlen(c->name, sizeof(c->name));
	int err;

	vfm_set_msg(errmsg, errlen, "");
	if (c->ifindex <= 0 || namelen >= sizeof(c->name) || c->addr_len > sizeof(c->addr))
		return -EINVAL;
	err = vfm_buf_msg_start(&b, RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, ++s->seq);
	if (!err)
		err = ifinfo_put(&b, c);
	if (!err && c->netns_fd >= 0)
		err = vfm_attr_put_u32(&b, IFLA_NET_NS_FD, (uint32_t)c->netns_fd);
	if (!err && namelen)
		err = vfm_attr_put_str(&b, IFLA_IFNAME, c->name);
	if (!err && c->mtu)
		err = vfm_attr_put_u32(&b, IFLA_MTU, c->mtu);
	if (!err && c->addr_len)
		err = vfm_attr_put(&b, IFLA_ADDRESS, c->addr, c->addr_len);
	if (err)
		return err;
	vfm_buf_msg_end(&b);
	return vfm_request(s, &b, errmsg, errlen);
}

static size_t family_len(uint8_t family)
{
	return family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;
}

int vfm_addr_add(struct vfm_sock *s, int32_t ifindex, uint8_t family, const uint8_t *addr,
		 uint8_t prefixlen, uint32_t flags, char *errmsg, size_t errlen)
{
	uint8_t req[256];
	struct vfm_buf b = { req, sizeof(req), 0 };
	size_t alen = family_len(family);
	struct ifaddrmsg *ifa;
	int err;

	vfm_set_msg(errmsg, errlen, "");
	if (!alen || ifindex <= 0 || prefixlen > alen * 8)
		return -EINVAL;
	err = vfm_buf_msg_start(&b, RTM_NEWADDR,
				NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, ++s->seq);
	if (err)
		return err;
	ifa = vfm_buf_reserve(&b, sizeof(*ifa));
	if (!ifa)
		return -ENOSPC;
	ifa->ifa_family = family;
	ifa->ifa_prefixlen = prefixlen;
	ifa->ifa_flags = (uint8_t)(flags & 0xff);
	ifa->ifa_index = (uint32_t)ifindex;
	err = vfm_attr_put(&b, IFA_LOCAL, addr, alen);
	if (!err)
		err = vfm_attr_put(&b, IFA_ADDRESS, addr, alen);
	if (!err && flags > 0xff)
		err = vfm_attr_put_u32(&b, IFA_FLAGS, flags);
	if (err)
		return err;
	vfm_buf_msg_end(&b);
	return vfm_request(s, &b, errmsg, errlen);
}

int vfm_route_add(struct vfm_sock *s, int32_t ifindex, uint8_t family, const uint8_t *dst,
		  uint8_t dst_len, const uint8_t *gw, char *errmsg, size_t errlen)
{
	uint8_t req[256];
	struct vfm_buf b = { req, sizeof(req), 0 };
	size_t alen = family_len(family);
	struct rtmsg *rt;
	int err;

	vfm_set_msg(errmsg, errlen, "");
	if (!alen || ifindex <= 0 || dst_len > alen * 8)
		return -EINVAL;
	err = vfm_buf_msg_start(&b, RTM_NEWROUTE,
				NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, ++s->seq);
	if (err)
		return err;
	rt = vfm_buf_reserve(&b, sizeof(*rt));
	if (!rt)
		return -ENOSPC;
	rt->rtm_family = family;
	rt->rtm_dst_len = dst_len;
	rt->rtm_table = RT_TABLE_MAIN;
	rt->rtm_protocol = RTPROT_BOOT;
	rt->rtm_scope = gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
	rt->rtm_type = RTN_UNICAST;
	err = dst_len ? vfm_attr_put(&b, RTA_DST, dst, alen) : 0;
	if (!err && gw)
		err = vfm_attr_put(&b, RTA_GATEWAY, gw, alen);
	if (!err)
		err = vfm_attr_put_u32(&b, RTA_OIF, (uint32_t)ifindex);
	if (err)
		return err;
	vfm_buf_msg_end(&b);
	return vfm_request(s, &b, errmsg, errlen);
}

/* ---- address dump ---- */

struct addr_walk {
	uint32_t seq;
	int32_t ifindex;
	struct vfm_ifaddrs *out;
	size_t cap;
	int err;
};

static int addr_keep(struct addr_walk *w, const struct ifaddrmsg *ifa, const struct nlattr *a)
{
	struct vfm_ifaddr *slot;

	if (w->out->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 8;
		struct vfm_ifaddr *p = realloc(w->out->addrs, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		w->out->addrs = p;
		w->cap = cap;
	}
	slot = &w->out->addrs[w->out->n++];
	memset(slot, 0, sizeof(*slot));
	slot->family = ifa->ifa_family;
	slot->prefixlen = ifa->ifa_prefixlen;
	memcpy(slot->addr, vfm_attr_data(a), vfm_attr_len(a));
	return 0;
}

static int addr_msg(const struct vfm_sock *s, const struct nlmsghdr *h, void *arg)
{
	struct addr_walk *w = arg;
	const struct ifaddrmsg *ifa;
	const struct nlattr *a, *local = NULL, *address = NULL;
	const uint8_t *cur, *end;
	bool bad = false;

	if (h->nlmsg_seq != w->seq || h->nlmsg_pid != s->portid)
		return 0;
	if (h->nlmsg_type == NLMSG_DONE)
		return 1;
	if (h->nlmsg_type == NLMSG_ERROR) {
		w->err = vfm_msg_error(h, NULL, 0);
		return 1;
	}
	if (h->nlmsg_type != RTM_NEWADDR || h->nlmsg_len < NLMSG_LENGTH(sizeof(*ifa)))
		return 0;
	ifa = NLMSG_DATA(h);
	if ((int32_t)ifa->ifa_index != w->ifindex)
		return 0;
	cur = (const uint8_t *)ifa + NLMSG_ALIGN(sizeof(*ifa));
	end = (const uint8_t *)h + h->nlmsg_len;
	while ((a = vfm_attr_next(&cur, end, &bad)) != NULL) {
		if (vfm_attr_type(a) == IFA_LOCAL)
			local = a;
		else if (vfm_attr_type(a) == IFA_ADDRESS)
			address = a;
	}
	a = local ? local : address;
	if (!a || vfm_attr_len(a) != family_len(ifa->ifa_family))
		return 0;
	w->err = addr_keep(w, ifa, a);
	return w->err ? 1 : 0;
}

int vfm_addrs_get(struct vfm_sock *s, int32_t ifindex, struct vfm_ifaddrs **out)
{
	uint8_t req[64];
	struct vfm_buf b = { req, sizeof(req), 0 };
	struct addr_walk w = { 0, ifindex, NULL, 0, 0 };
	struct ifaddrmsg *ifa;
	int err;

	*out = NULL;
	w.out = calloc(1, sizeof(*w.out));
	if (!w.out)
		return -ENOMEM;
	err = vfm_buf_msg_start(&b, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, ++s->seq);
	ifa = err ? NULL : vfm_buf_reserve(&b, sizeof(*ifa));
	if (!ifa) {
		vfm_addrs_free(w.out);
		return -ENOSPC;
	}
	ifa->ifa_index = (uint32_t)ifindex;
	vfm_buf_msg_end(&b);
	w.seq = s->seq;
	err = vfm_sock_send(s, b.p, b.len);
	while (!err && (err = vfm_recv_msgs(s, addr_msg, &w)) == 0)
		;
	err = err < 0 ? err : w.err;
	if (err < 0) {
		vfm_addrs_free(w.out);
		return err;
	}
	*out = w.out;
	return 0;
}

void vfm_addrs_free(struct vfm_ifaddrs *a)
{
	if (!a)
		return;
	free(a->addrs);
	free(a);
}
