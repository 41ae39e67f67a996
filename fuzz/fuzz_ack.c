/* ACKs: vfm_msg_error / vfm_msg_error_reply (error codes, extended-ACK attributes, capped and
 * echoing ACKs) on every message of every datagram, then the core's ACK loops over a fake socket
 * (fake_sock.h): vfm_collect_acks for a window of pipelined requests, then vfm_request.
 * Input: option byte (bit 0: NETLINK_CAP_ACK; bits 1-7: requests in flight - 1), datagrams. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "fake_sock.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void each_msg(const uint8_t *p, size_t len)
{
	static const size_t lens[] = { 0, 1, 7, VFM_MSG_LEN };
	const uint8_t *cur = p, *end = p + len;
	const struct nlmsghdr *h;
	bool bad = false;

	while ((h = vfm_msg_next(&cur, end, &bad)) != NULL) {
		if (h->nlmsg_type != NLMSG_ERROR)
			continue;
		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			char *msg = lens[i] ? malloc(lens[i]) : NULL;
			int e1 = vfm_msg_error(h, msg, lens[i]);
			int e2 = vfm_msg_error_reply(h, msg, lens[i]);

			assert(e1 <= 0 && e1 >= -4095 && e2 < 0);
			if (lens[i])
				assert(memchr(msg, 0, lens[i]));
			free(msg);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vfm_inflight fl[128];
	struct vfm_sock *s;
	uint8_t req[64];
	struct vfm_buf b = { req, sizeof(req), 0 };
	char errmsg[VFM_MSG_LEN];
	size_t nfl, i, len;
	const uint8_t *p;
	int err;

	if (size < 1)
		return 0;
	nfl = (size_t)(data[0] >> 1) + 1;
	s = fake_open(data + 1, size - 1, data[0] & 1);
	for (i = 0; (p = fake_dgram(i, &len)) != NULL; i++)
		each_msg(p, len);
	for (i = 0; i < nfl; i++) {
		memset(&fl[i], 0, sizeof(fl[i]));
		fl[i].seq = 1 + (uint32_t)i;
		fl[i].err = VFM_PENDING;
	}
	s->seq = (uint32_t)nfl;
	err = vfm_collect_acks(s, fl, nfl);
	for (i = 0; i < nfl && err == 0; i++) {
		assert(fl[i].err <= 0);
		assert(memchr(fl[i].msg, 0, sizeof(fl[i].msg)));
	}
	/* whatever is left answers one more request */
	if (vfm_buf_msg_start(&b, RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, ++s->seq) == 0) {
		vfm_ifinfo_put(&b, 2);
		vfm_buf_msg_end(&b);
		err = vfm_request(s, &b, errmsg, sizeof(errmsg));
		assert(err <= 0);
		assert(memchr(errmsg, 0, sizeof(errmsg)));
	}
	fake_close(s);
	return 0;
}
