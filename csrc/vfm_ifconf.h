/* pyvfmac C core: network namespaces and a netdev's own configuration (name, namespace, MTU,
 * address, up/down, IP addresses and routes) -- what a CNI plugin does to a VF netdev. */
#ifndef VFM_IFCONF_H
#define VFM_IFCONF_H

#include <stddef.h>
#include <stdint.h>

#include "vfm_netlink.h"

/* Open an rtnetlink socket in the network namespace nsfd (an open /proc/PID/ns/net or
 * /run/netns/NAME file); the calling thread returns to its own namespace before this returns.
 * -errno; -ENOTRECOVERABLE when the thread could not return (it must not go on). */
int vfm_sock_open_netns(struct vfm_sock **out, uint32_t bufsize, int nsfd);

/* A socket(domain, type | SOCK_CLOEXEC, protocol) made inside the namespace nsfd (a packet or
 * ICMPv6 socket, to announce a pod's addresses), and a file opened there (/proc/sys/net is the
 * opener's namespace's): the descriptor, or -errno (-ENOTRECOVERABLE as above). */
int vfm_netns_socket(int nsfd, int domain, int type, int protocol);
int vfm_netns_open(int nsfd, const char *path, int flags);

/* One RTM_SETLINK of one netdev; each part optional. */
struct vfm_link_conf {
	int32_t ifindex;
	int32_t netns_fd;   /* >= 0: move into that namespace */
	char name[16];      /* "": keep; with netns_fd: the name used if the current one is taken */
	uint32_t mtu;       /* 0: keep */
	uint8_t addr[32];   /* the netdev's own address, addr_len bytes (0: keep) */
	uint32_t addr_len;
	int32_t up;         /* -1 keep, 0 down, 1 up */
};
int vfm_link_conf_set(struct vfm_sock *s, const struct vfm_link_conf *c, char *errmsg,
		      size_t errlen);

/* RTM_NEWADDR (NLM_F_EXCL) / RTM_NEWROUTE (NLM_F_EXCL): family AF_INET or AF_INET6, addresses
 * 4 or 16 bytes; gw NULL for an on-link route; flags are IFA_F_* (e.g. IFA_F_NODAD). */
int vfm_addr_add(struct vfm_sock *s, int32_t ifindex, uint8_t family, const uint8_t *addr,
		 uint8_t prefixlen, uint32_t flags, char *errmsg, size_t errlen);
int vfm_route_add(struct vfm_sock *s, int32_t ifindex, uint8_t family, const uint8_t *dst,
		  uint8_t dst_len, const uint8_t *gw, char *errmsg, size_t errlen);

/* The addresses of one netdev (RTM_GETADDR dump filtered by ifindex), each as family, prefix
 * length and 16 address bytes. Free with vfm_addrs_free. */
struct vfm_ifaddr {
	uint8_t family;
	uint8_t prefixlen;
	uint8_t addr[16];
};
struct vfm_ifaddrs {
	size_t n;
	struct vfm_ifaddr *addrs;
};
int vfm_addrs_get(struct vfm_sock *s, int32_t ifindex, struct vfm_ifaddrs **out);
void vfm_addrs_free(struct vfm_ifaddrs *a);

#endif
