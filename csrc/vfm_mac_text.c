/* VF MACs as text: the first 6 bytes of each VF's MAC, lowercase, colon-separated. */
#include "vfm_internal.h"

void vfm_mac_format(char *p, const uint8_t *mac, char sep)
{
	static const char digits[] = "0123456789abcdef";

	for (unsigned int k = 0; k < 6; k++) {
		p[3 * k] = digits[mac[k] >> 4];
		p[3 * k + 1] = digits[mac[k] & 15];
		p[3 * k + 2] = k < 5 ? ':' : sep;
	}
}

void vfm_vfs_mac_text(const struct vfm_vf_info *vfs, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		vfm_mac_format(out + VFM_MAC_TEXT_LEN * i, vfs[i].mac, i + 1 < n ? '\n' : '\0');
}
