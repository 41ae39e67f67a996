/* RTM_NEWLINK parsing: link identity and the VF list, correct past 64 KiB (wrapped lengths).
 * The link array itself (new, grow, free) lives here too: parsing is what fills it. */
#include <errno.h>
#include <linux/if_link.h>
#include <stdlib.h>
#include <string.h>

#include "vfm_internal.h"

#ifndef IFLA_PARENT_DEV_NAME
#define IFLA_PARENT_DEV_NAME 56
#define IFLA_PARENT_DEV_BUS_NAME 57
#endif
#ifndef IFLA_PERM_ADDRESS
#define IFLA_PERM_ADDRESS 54
#endif

struct vflist {
	const uint8_t *start; /* first IFLA_VF_INFO */
	const uint8_t *end;   /* just past the last one read */
	uint32_t count;
};

struct vfm_links *vfm_links_new(void)
{
	return calloc(1, sizeof(struct vfm_links));
}

void vfm_links_free(struct vfm_links *l)
{
	size_t i;

	if (!l)
		return;
	for (i = 0; i < l->n; i++)
		free(l->links[i].vfs);
	free(l->links);
	free(l);
}

static uint32_t get_u32(const struct nlattr *a)
{
	uint32_t v;

	memcpy(&v, vfm_attr_data(a), sizeof(v));
	return v;
}

static int32_t setting(uint32_t v)
{
	return v == UINT32_MAX ? -1 : (int32_t)(v != 0);
}

static void vf_vlan_list(struct vfm_vf_info *vi, const struct nlattr *list)
{
	const uint8_t *cur = vfm_attr_data(list);
	const uint8_t *end = cur + vfm_attr_len(list);
	const struct nlattr *a;
	struct ifla_vf_vlan_info v;
	bool bad = false;

	while ((a = vfm_attr_next(&cur, end, &bad)) != NULL) {
		if (vfm_attr_type(a) != IFLA_VF_VLAN_INFO || vfm_attr_len(a) < sizeof(v))
			continue;
		memcpy(&v, vfm_attr_data(a), sizeof(v));
		vi->vlan = v.vlan;
		vi->qos = v.qos;
		vi->vlan_proto = (uint16_t)((v.vlan_proto >> 8) | (v.vlan_proto << 8)); /* be16 */
		return;
	}
}

/* The i-th 32-bit word of an attribute's payload (its length checked by the caller). */
static uint32_t word(const uint8_t *d, size_t i)
{
	uint32_t v;

	memcpy(&v, d + 4 * i, sizeof(v));
	return v;
}

/* A known IFLA_VF_* attribute shorter than its struct. */
static bool vf_attr_short(const struct nlattr *a)
{
	static const uint8_t need[] = {
		[IFLA_VF_MAC] = sizeof(struct ifla_vf_mac),
		[IFLA_VF_VLAN] = sizeof(struct ifla_vf_vlan),
		[IFLA_VF_RATE] = sizeof(struct ifla_vf_rate),
		[IFLA_VF_SPOOFCHK] = sizeof(struct ifla_vf_spoofchk),
		[IFLA_VF_LINK_STATE] = sizeof(struct ifla_vf_link_state),
		[IFLA_VF_TRUST] = sizeof(struct ifla_vf_trust),
	};
	uint16_t t = vfm_attr_type(a);

	return t < sizeof(need) && need[t] && vfm_attr_len(a) < need[t];
}

/* One attribute of an IFLA_VF_INFO: known ones shorter than their struct make the message bad;
 * unknown ones are skipped, never rejected (old program, new kernel). */
static int vf_info_attr(struct vfm_vf_info *vi, const struct nlattr *a)
{
	const uint8_t *d = vfm_attr_data(a);

	if (vf_attr_short(a))
		return -EBADMSG;
	switch (vfm_attr_type(a)) {
	case IFLA_VF_MAC:
		vi->vf = word(d, 0);
		memcpy(vi->mac, d + 4, VFM_MAC_LEN);
		break;
	case IFLA_VF_VLAN:
		if (!vi->vlan_proto) {
			vi->vlan = word(d, 1);
			vi->qos = word(d, 2);
		}
		break;
	case IFLA_VF_VLAN_LIST:
		vf_vlan_list(vi, a);
		break;
	case IFLA_VF_RATE:
		vi->min_tx_rate = word(d, 1);
		vi->max_tx_rate = word(d, 2);
		break;
	case IFLA_VF_SPOOFCHK:
		vi->spoofchk = setting(word(d, 1));
		break;
	case IFLA_VF_LINK_STATE:
		vi->link_state = word(d, 1) <= 2 ? (int32_t)word(d, 1) : -1;
		break;
	case IFLA_VF_TRUST:
		vi->trust = setting(word(d, 1));
		break;
	}
	return 0;
}

static int vf_info_parse(struct vfm_vf_info *vi, const struct nlattr *info)
{
	const uint8_t *cur = vfm_attr_data(info);
	const uint8_t *end = cur + vfm_attr_len(info);
	const struct nlattr *a;
	bool bad = false, has_mac = false;
	int err;

	memset(vi, 0, sizeof(*vi));
	vi->spoofchk = vi->trust = vi->link_state = -1;
	while ((a = vfm_attr_next(&cur, end, &bad)) != NULL) {
		err = vf_info_attr(vi, a);
		if (err < 0)
			return err;
		has_mac |= vfm_attr_type(a) == IFLA_VF_MAC;
	}
	return bad || !has_mac ? -EBADMSG : 0;
}

/* Walk IFLA_VF_INFO entries from the list's start, bounded by the message, not by the list's own
 * 16-bit length, which wraps past 64 KiB. Stops at the first other attribute or at num_vf. */
static int vflist_walk(struct vflist *vl, const uint8_t *start, const uint8_t *end, int32_t num_vf)
{
	const uint8_t *cur = start;
	const struct nlattr *a;

	vl->start = start;
	vl->count = 0;
	vl->end = start;
	while (cur + NLA_HDRLEN <= end) {
		const uint8_t *at = cur;
		bool bad = false;

		if (num_vf >= 0 && vl->count >= (uint32_t)num_vf)
			break;
		if (vfm_attr_type((const struct nlattr *)at) != IFLA_VF_INFO)
			break;
		a = vfm_attr_next(&cur, end, &bad);
		if (!a)
			return -EBADMSG;
		vl->count++;
		vl->end = cur;
	}
	return 0;
}

/* Find the list's real extent: its declared length must equal the walked one modulo 64 KiB. */
static int vflist_extent(struct vflist *vl, const struct nlattr *list, const uint8_t *end,
			 int32_t num_vf, uint32_t *status)
{
	const uint8_t *start = (const uint8_t *)list + NLA_HDRLEN;
	size_t declared = list->nla_len, walked;
	int err = vflist_walk(vl, start, end, num_vf);

	if (err < 0)
		return err;
	walked = (size_t)(vl->end - (const uint8_t *)list);
	if (walked == declared) {
		*status = VFM_VFLIST_OK;
		return 0;
	}
	if (walked > UINT16_MAX && (walked & UINT16_MAX) == declared) {
		*status = VFM_VFLIST_WRAPPED;
		return 0;
	}
	/* The walk ran past a list whose length did not wrap: trust the declared length. */
	if (declared >= NLA_HDRLEN && declared <= (size_t)(end - (const uint8_t *)list)) {
		const uint8_t *stop = (const uint8_t *)list + declared;

		err = vflist_walk(vl, start, stop, num_vf);
		if (err < 0 || vl->end != stop)
			return err < 0 ? err : -EBADMSG;
		*status = VFM_VFLIST_OK;
		return 0;
	}
	return -EBADMSG;
}

static int vflist_parse(struct vfm_link *link, const struct vflist *vl)
{
	const uint8_t *cur = vl->start;
	const struct nlattr *a;
	uint32_t i;
	bool bad = false;
	int err;

	link->vfs = calloc(vl->count ? vl->count : 1, sizeof(*link->vfs));
	if (!link->vfs)
		return -ENOMEM;
	for (i = 0; i < vl->count; i++) {
		a = vfm_attr_next(&cur, vl->end, &bad);
		if (!a)
			return -EBADMSG;
		err = vf_info_parse(&link->vfs[i], a);
		if (err < 0)
			return err;
	}
	link->n_vfs = vl->count;
	return 0;
}

/* The VF list attribute: parse it and return where the link's next attribute starts. */
static int link_vflist(struct vfm_link *link, const struct nlattr *list, const uint8_t *end,
		       const uint8_t **next)
{
	struct vflist vl;
	size_t off;
	int err;

	if (link->vfs)
		return -EBADMSG; /* two lists */
	err = vflist_extent(&vl, list, end, link->num_vf, &link->vf_list);
	if (err < 0)
		return err;
	err = vflist_parse(link, &vl);
	if (err < 0)
		return err;
	off = NLA_ALIGN((size_t)(vl.end - (const uint8_t *)list));
	*next = off < (size_t)(end - (const uint8_t *)list) ? (const uint8_t *)list + off : end;
	return 0;
}

static void link_addr(uint8_t *dst, uint32_t *dstlen, const struct nlattr *a)
{
	size_t n = vfm_attr_len(a);

	if (n > VFM_MAC_LEN)
		n = VFM_MAC_LEN;
	memcpy(dst, vfm_attr_data(a), n);
	*dstlen = (uint32_t)n;
}

static int link_attr(struct vfm_link *link, const struct nlattr *a)
{
	switch (vfm_attr_type(a)) {
	case IFLA_IFNAME:
		vfm_copy_str(link->name, sizeof(link->name), a);
		break;
	case IFLA_ADDRESS:
		link_addr(link->addr, &link->addr_len, a);
		break;
	case IFLA_PERM_ADDRESS:
		link_addr(link->perm_addr, &link->perm_addr_len, a);
		break;
	case IFLA_NUM_VF:
		if (vfm_attr_len(a) < 4)
			return -EBADMSG;
		link->num_vf = (int32_t)(get_u32(a) & INT32_MAX);
		break;
	case IFLA_PARENT_DEV_NAME:
		vfm_copy_str(link->parent_dev, sizeof(link->parent_dev), a);
		break;
	case IFLA_PARENT_DEV_BUS_NAME:
		vfm_copy_str(link->parent_bus, sizeof(link->parent_bus), a);
		break;
	default:
		break;
	}
	return 0;
}

static int link_parse(struct vfm_link *link, const struct nlmsghdr *h)
{
	const struct ifinfomsg *ifi = NLMSG_DATA(h);
	const uint8_t *cur = (const uint8_t *)h + NLMSG_LENGTH(sizeof(*ifi));
	const uint8_t *end = (const uint8_t *)h + h->nlmsg_len;
	int err;

	if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*ifi)))
		return -EBADMSG;
	link->ifindex = ifi->ifi_index;
	link->flags = ifi->ifi_flags;
	link->num_vf = -1;
	cur = (const uint8_t *)h + NLMSG_ALIGN(NLMSG_LENGTH(sizeof(*ifi)));
	while (cur < end) {
		const struct nlattr *a = (const struct nlattr *)cur;
		bool bad = false;

		if ((size_t)(end - cur) < NLA_HDRLEN)
			return -EBADMSG;
		if (vfm_attr_type(a) == IFLA_VFINFO_LIST) {
			err = link_vflist(link, a, end, &cur);
			if (err < 0)
				return err;
			continue;
		}
		a = vfm_attr_next(&cur, end, &bad);
		if (!a)
			return -EBADMSG;
		err = link_attr(link, a);
		if (err < 0)
			return err;
	}
	return 0;
}

/* The array's capacity is implied by n: 8, then the next power of two. */
static int links_grow(struct vfm_links *l)
{
	size_t cap = l->n ? l->n * 2 : 8;
	struct vfm_link *p;

	if (l->n != 0 && (l->n < 8 || (l->n & (l->n - 1)) != 0))
		return 0;
	p = realloc(l->links, cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	l->links = p;
	return 0;
}

int vfm_links_add_msg(struct vfm_links *l, const struct nlmsghdr *h)
{
	struct vfm_link *link;
	int err;

	if (h->nlmsg_type != RTM_NEWLINK)
		return 0;
	err = links_grow(l);
	if (err < 0)
		return err;
	link = &l->links[l->n];
	memset(link, 0, sizeof(*link));
	err = link_parse(link, h);
	if (err < 0) {
		free(link->vfs);
		link->vfs = NULL;
		return err;
	}
	l->n++;
	return 0;
}

static int parse_all(struct vfm_links *l, const uint8_t *buf, size_t len)
{
	const uint8_t *cur = buf, *end = buf + len;
	const struct nlmsghdr *h;
	bool bad = false;
	int err;

	while ((h = vfm_msg_next(&cur, end, &bad)) != NULL) {
		if (h->nlmsg_type == NLMSG_DONE)
			return 0;
		if (h->nlmsg_type == NLMSG_ERROR)
			return vfm_msg_error_reply(h, NULL, 0);
		err = vfm_links_add_msg(l, h);
		if (err < 0)
			return err;
	}
	return bad ? -EBADMSG : 0;
}

int vfm_links_parse(const uint8_t *buf, size_t len, struct vfm_links **out)
{
	struct vfm_links *l;
	uint8_t *copy;
	int err;

	*out = NULL;
	l = vfm_links_new();
	copy = malloc(len ? len : 1); /* aligned copy: the caller's bytes may sit anywhere */
	if (!l || !copy) {
		free(copy);
		vfm_links_free(l);
		return -ENOMEM;
	}
	memcpy(copy, buf, len);
	err = parse_all(l, copy, len);
	free(copy);
	if (err < 0) {
		vfm_links_free(l);
		return err;
	}
	*out = l;
	return 0;
}
