/* Single RTM_SETLINK requests on a netdev itself: its own MAC (a VF netdev held by a host
 * driver). */
#include <errno.h>
#include <linux/if_link.h>

#include "vfm_internal.h"

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
