/* Derived VF MACs: one HMAC-SHA256 per VF, the key's pads and the common message head hashed
 * once per PF. */
#include <errno.h>
#include <stdio.h>

#include "vfm_derive.h"
#include "vfm_internal.h"
#include "vfm_sha256.h"

#define MAC_LEN 6

/* The MAC of one digest: prefix + digest, or the digest made locally administered unicast. */
static void mac_of_digest(uint8_t mac[MAC_LEN], const uint8_t *digest, const uint8_t *prefix,
			  size_t prefix_len)
{
	memcpy(mac, prefix, prefix_len);
	memcpy(mac + prefix_len, digest, MAC_LEN - prefix_len);
	if (prefix_len == 0)
		mac[0] = (uint8_t)((mac[0] & 0xfc) | 0x02);
}

int vfm_derive_macs(const uint8_t *key, size_t key_len, const char *head, size_t head_len,
		    const uint8_t *prefix, size_t prefix_len, uint32_t first, uint32_t count,
		    char *out)
{
	struct vfm_hmac hmac;
	struct vfm_sha256 with_head;

	if (prefix_len >= MAC_LEN || (count > 0 && count - 1 > UINT32_MAX - first))
		return -EINVAL;
	vfm_hmac_init(&hmac, key, key_len);
	with_head = hmac.inner;
	vfm_sha256_update(&with_head, head, head_len);
	for (uint32_t i = 0; i < count; i++) {
		struct vfm_sha256 inner = with_head;
		uint8_t digest[VFM_SHA256_LEN], mac[MAC_LEN];
		char index[16];
		int n = snprintf(index, sizeof(index), "%u", (unsigned int)(first + i));

		if (n <= 0 || (size_t)n >= sizeof(index))
			return -EINVAL;
		vfm_sha256_update(&inner, index, (size_t)n);
		vfm_hmac_finish(&hmac, &inner, digest);
		mac_of_digest(mac, digest, prefix, prefix_len);
		vfm_mac_format(out + VFM_MAC_TEXT_LEN * (size_t)i, mac, i + 1 < count ? '\n' : '\0');
	}
	return 0;
}
