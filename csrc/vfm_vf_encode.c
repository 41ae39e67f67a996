/* THE VF encoder: one IFLA_VF_INFO per change (vfm_vf_put), the RTM_SETLINK around a run of
 * them, and the MAC-only template the bulk path stamps its entries from. */
#include <errno.h>
#include <linux/if_link.h>
#include <string.h>

#include "vfm_internal.h"

static int put_mac(struct vfm_buf *b, const struct vfm_vf_change *c)
{
	struct ifla_vf_mac m;

	memset(&m, 0, sizeof(m));
	m.vf = c->vf;
	memcpy(m.mac, c->mac, sizeof(c->mac));
	return vfm_attr_put(b, IFLA_VF_MAC, &m, sizeof(m));
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
	err = vfm_attr_put(b, IFLA_VF_VLAN_INFO, &v, sizeof(v));
	return err ? err : vfm_nest_end(b, nest);
}

static int put_setting(struct vfm_buf *b, uint16_t type, uint32_t vf, uint32_t value)
{
	uint32_t pair[2] = { vf, value }; /* ifla_vf_spoofchk / _trust / _link_state */

	return vfm_attr_put(b, type, pair, sizeof(pair));
}

static int put_rate(struct vfm_buf *b, const struct vfm_vf_change *c)
{
	struct ifla_vf_rate r = { .vf = c->vf, .min_tx_rate = c->min_tx_rate,
				  .max_tx_rate = c->max_tx_rate };

	return vfm_attr_put(b, IFLA_VF_RATE, &r, sizeof(r));
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


int vfm_vf_put(struct vfm_buf *b, const struct vfm_vf_change *c)
{
	long nest = vfm_nest_start(b, IFLA_VF_INFO);
	int err;

	if (nest < 0)
		return (int)nest;
	err = put_vf_attrs(b, c);
	if (!err)
		err = vfm_nest_end(b, nest);
	if (err)
		vfm_nest_cancel(b, nest);
	return err;
}

int vfm_vf_mac_template(uint8_t tmpl[VFM_VF_MAC_INFO_LEN])
{
	struct vfm_vf_change c = { .set = VFM_SET_MAC };
	struct vfm_buf b = { tmpl, VFM_VF_MAC_INFO_LEN, 0 };
	int err = vfm_vf_put(&b, &c);

	if (err)
		return err;
	return b.len == VFM_VF_MAC_INFO_LEN ? 0 : -EPROTO;
}

long vfm_vf_msg_start(struct vfm_buf *b, int32_t ifindex, uint32_t seq)
{
	int err = vfm_buf_msg_start(b, RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, seq);

	if (!err)
		err = vfm_ifinfo_put(b, ifindex);
	if (err)
		return err;
	return vfm_nest_start(b, IFLA_VFINFO_LIST);
}

int vfm_vf_msg_end(struct vfm_buf *b, long list)
{
	int err = vfm_nest_end(b, list);

	if (err)
		return err;
	vfm_buf_msg_end(b);
	return 0;
}

/* One IFLA_VF_INFO into the list at offset list; on overflow (buffer or the list's 64 KiB)
 * the entry is taken back. */
static int put_listed(struct vfm_buf *b, long list, const struct vfm_vf_change *c)
{
	size_t before = b->len;
	int err = vfm_vf_put(b, c);

	if (!err && b->len - (size_t)list > VFM_NEST_MAX) {
		b->len = before;
		err = -EMSGSIZE;
	}
	return err;
}

static const struct vfm_vf_change *entry(const struct vfm_vf_change *ch, const uint32_t *idx,
					 size_t i)
{
	return &ch[idx ? idx[i] : i];
}

int vfm_vf_encode_run(const struct vfm_vf_change *ch, const uint32_t *idx, size_t n,
		      uint32_t max_per_msg, uint32_t seq, struct vfm_buf *b, size_t *taken)
{
	int32_t ifindex = entry(ch, idx, 0)->ifindex;
	long list = vfm_vf_msg_start(b, ifindex, seq);
	size_t i = 0;
	int err;

	*taken = 0;
	if (list < 0)
		return (int)list;
	for (; i < n && (!max_per_msg || i < max_per_msg); i++) {
		const struct vfm_vf_change *c = entry(ch, idx, i);

		if (c->ifindex != ifindex)
			break;
		err = put_listed(b, list, c);
		if (err == -EMSGSIZE || err == -ENOSPC)
			break;
		if (err)
			return err;
	}
	if (i == 0)
		return -ENOSPC;
	err = vfm_vf_msg_end(b, list);
	if (err)
		return err;
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
	return vfm_vf_encode_run(ch, NULL, n, max_per_msg, seq, &b, taken);
}
