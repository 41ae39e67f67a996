/* pyvfmac C core: derived VF MACs (the formula is in pyvfmac/apply/derive.py). */
#ifndef VFM_DERIVE_H
#define VFM_DERIVE_H

#include <stddef.h>
#include <stdint.h>

/* The derived MACs of VFs first .. first + count - 1 of one PF: H = HMAC-SHA256(key, head +
 * the VF index in decimal); the MAC is prefix + H[0 : 6 - prefix_len], or without a prefix
 * H[0:6] with the first octet made locally administered unicast. Written as text into out
 * (VFM_MAC_TEXT_LEN * count bytes, vfm_netlink.h): "aa:bb:cc:dd:ee:ff" each, separated by
 * '\n', the last NUL-terminated. 0, or -EINVAL (nothing written) for a prefix of 6 octets or
 * more or indexes past UINT32_MAX. */
int vfm_derive_macs(const uint8_t *key, size_t key_len, const char *head, size_t head_len,
		    const uint8_t *prefix, size_t prefix_len, uint32_t first, uint32_t count,
		    char *out);

#endif
