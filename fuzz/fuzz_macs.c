/* The bulk MAC text: vfm_macs_parse, then vfm_macs_encode (the same text planned into
 * RTM_SETLINK messages) for up to 3 jobs. Input: 4 option bytes, then the text.
 *  [0]: entries n = (text length + 1) / 18 + ([0] & 7) - 2 (a few off the natural count)
 *  [1]: jobs (1-3) and explicit VF indexes (bit 7)
 *  [2]: max_per_msg (0: as many as fit)
 *  [3]: output buffer size selector (small buffers hit -ENOSPC) */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vfm_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vfm_mac_job jobs[3];
	const char *text;
	size_t len, n, bad = (size_t)-1, used = 0, njobs, buflen;
	long nn;
	uint8_t *macs, *buf;
	uint32_t *vfs = NULL;
	int err;

	if (size < 4)
		return 0;
	text = (const char *)data + 4;
	len = size - 4;
	nn = (long)((len + 1) / 18) + (data[0] & 7) - 2;
	n = nn < 0 ? 0 : (size_t)nn;
	macs = malloc(6 * n + 1);
	err = vfm_macs_parse(text, len, n, macs, &bad);
	assert(err == 0 || (err == -EINVAL && bad < (n ? n : 1)));
	if (err == 0 && n) {
		/* canonical: the text is exactly what the parsed MACs print as */
		struct vfm_vf_info *vi = calloc(n, sizeof(*vi));
		char *back = malloc(18 * n);

		for (size_t i = 0; i < n; i++) {
			memcpy(vi[i].mac, macs + 6 * i, 6);
			assert(!(macs[6 * i] & 1));
		}
		vfm_vfs_mac_text(vi, n, back);
		assert(len == 18 * n - 1 && memcmp(back, text, len) == 0);
		free(back);
		free(vi);
	}
	free(macs);

	njobs = (size_t)(data[1] & 3) % 3 + 1;
	for (size_t j = 0; j < njobs; j++) {
		memset(&jobs[j], 0, sizeof(jobs[j]));
		jobs[j].ifindex = (int32_t)j + 2;
		jobs[j].count = (uint32_t)(j + 1 < njobs ? n / njobs : n - (njobs - 1) * (n / njobs));
	}
	if (data[1] & 0x80) {
		vfs = malloc(sizeof(*vfs) * (n ? n : 1));
		for (size_t i = 0; i < n; i++)
			vfs[i] = (uint32_t)(i * 0x01010101u * (data[1] & 0x7c)); /* some over VFM_VF_MAX */
	}
	buflen = data[3] < 16 ? (size_t)data[3] * 64 : (size_t)1 << 16;
	buf = malloc(buflen ? buflen : 1);
	err = vfm_macs_encode(jobs, njobs, vfs, text, len, data[2], 1, buf, buflen, &used, &bad);
	assert(err != 0 || n == 0);
	if (err > 0)
		assert(used <= buflen);
	free(buf);
	free(vfs);
	return 0;
}
