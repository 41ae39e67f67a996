/* vfm_links_get over a fake socket (fake_sock.h): the request/reply loop of one link or a dump,
 * interrupted dumps redone, errors and extended ACKs in the middle of a dump.
 * Input: option byte (bit 0: dump, bit 1: by name, bit 2: errmsg buffer of 8 bytes), then
 * datagrams. */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "fake_sock.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vfm_sock *s;
	struct vfm_links *l = NULL;
	char errmsg[VFM_MSG_LEN];
	size_t errlen;
	uint8_t opt;
	int32_t ifindex;
	int err;

	if (size < 1)
		return 0;
	opt = data[0];
	s = fake_open(data + 1, size - 1, 1);
	ifindex = (opt & 1) ? -1 : (opt & 2) ? 0 : 3;
	errlen = (opt & 4) ? 8 : sizeof(errmsg);
	memset(errmsg, 'x', sizeof(errmsg));
	err = vfm_links_get(s, ifindex, "eth0", &l, errmsg, errlen);
	assert(memchr(errmsg, 0, errlen));
	assert((err == 0) == (l != NULL));
	assert(err <= 0);
	if (l) {
		for (size_t i = 0; i < l->n; i++)
			assert(l->links[i].n_vfs == 0 || l->links[i].vfs);
		vfm_links_free(l);
	}
	fake_close(s);
	return 0;
}
