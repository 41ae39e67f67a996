/* 802.1Qbh port profiles of VFs: RTM_SETLINK IFLA_VF_PORTS { IFLA_VF_PORT { IFLA_PORT_* } }. */
#include <errno.h>
#include <linux/if_link.h>
#include <string.h>

#include "vfm_internal.h"

static int put_port(struct vfm_buf *b, const struct vfm_port_req *req)
{
	char profile[sizeof(req->profile) + 1];
	int err = vfm_attr_put_u32(b, IFLA_PORT_VF, req->vf);

	memcpy(profile, req->profile, sizeof(req->profile));
	profile[sizeof(req->profile)] = 0;
	if (!err && profile[0])
		err = vfm_attr_put_str(b, IFLA_PORT_PROFILE, profile);
	if (!err && req->has_instance_uuid)
		err = vfm_attr_put(b, IFLA_PORT_INSTANCE_UUID, req->instance_uuid, 16);
	if (!err && req->has_host_uuid)
		err = vfm_attr_put(b, IFLA_PORT_HOST_UUID, req->host_uuid, 16);
	if (!err)
		err = vfm_attr_put_u8(b, IFLA_PORT_REQUEST, req->request);
	return err;
}

int vfm_vf_port_encode(const struct vfm_port_req *req, uint32_t seq, uint8_t *buf, size_t buflen)
{
	struct vfm_buf b = { buf, buflen, 0 };
	long ports, port;
	int err = vfm_buf_msg_start(&b, RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, seq);

	if (!err)
		err = vfm_ifinfo_put(&b, req->ifindex);
	if (err)
		return err;
	ports = vfm_nest_start(&b, IFLA_VF_PORTS);
	port = ports < 0 ? ports : vfm_nest_start(&b, IFLA_VF_PORT);
	if (port < 0)
		return (int)port;
	err = put_port(&b, req);
	if (!err)
		err = vfm_nest_end(&b, port);
	if (!err)
		err = vfm_nest_end(&b, ports);
	if (err)
		return err;
	vfm_buf_msg_end(&b);
	return (int)b.len;
}

int vfm_vf_port_set(struct vfm_sock *s, const struct vfm_port_req *req, char *errmsg,
		    size_t errlen)
{
	uint8_t msg[512];
	struct vfm_buf b = { msg, sizeof(msg), 0 };
	int len = vfm_vf_port_encode(req, ++s->seq, msg, sizeof(msg));

	if (len < 0)
		return len;
	b.len = (size_t)len;
	return vfm_request(s, &b, errmsg, errlen);
}
