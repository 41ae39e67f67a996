/* vfm_links_parse: RTM_NEWLINK replies and dumps as received (VF lists past 64 KiB included).
 * Input: the raw datagram bytes. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "vfm_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vfm_links *l = NULL;
	int err = vfm_links_parse(data, size, &l);

	if (err < 0) {
		assert(l == NULL);
		return 0;
	}
	assert(l != NULL);
	for (size_t i = 0; i < l->n; i++) {
		const struct vfm_link *k = &l->links[i];
		char *text;

		assert(memchr(k->name, 0, sizeof(k->name)));
		assert(memchr(k->parent_bus, 0, sizeof(k->parent_bus)));
		assert(memchr(k->parent_dev, 0, sizeof(k->parent_dev)));
		assert(k->addr_len <= VFM_MAC_LEN && k->perm_addr_len <= VFM_MAC_LEN);
		assert(k->vf_list <= VFM_VFLIST_WRAPPED);
		assert(k->vf_list != VFM_VFLIST_NONE || k->n_vfs == 0);
		assert(k->num_vf < 0 || k->n_vfs <= (uint32_t)k->num_vf);
		/* every entry readable, and the text view of them as the Python layer asks for it */
		text = malloc(18 * (size_t)k->n_vfs + 1);
		vfm_vfs_mac_text(k->vfs, k->n_vfs, text);
		if (k->n_vfs)
			assert(strlen(text) == 18 * (size_t)k->n_vfs - 1);
		for (uint32_t v = 0; v < k->n_vfs; v++) {
			const struct vfm_vf_info *vi = &k->vfs[v];

			assert(vi->spoofchk >= -1 && vi->spoofchk <= 1);
			assert(vi->trust >= -1 && vi->trust <= 1);
			assert(vi->link_state >= -1 && vi->link_state <= 2);
		}
		free(text);
	}
	vfm_links_free(l);
	return 0;
}
