/* SHA-256 (FIPS 180-4) and its HMAC (RFC 2104) for the derived MACs: internal to the core. */
#ifndef VFM_SHA256_H
#define VFM_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define VFM_SHA256_LEN 32
#define VFM_SHA256_BLOCK 64

struct vfm_sha256 {
	uint32_t h[8];
	uint64_t total;                  /* bytes hashed so far */
	uint8_t block[VFM_SHA256_BLOCK]; /* the part of a block not yet compressed */
	size_t used;
};

void vfm_sha256_init(struct vfm_sha256 *s);
void vfm_sha256_update(struct vfm_sha256 *s, const void *data, size_t len);
void vfm_sha256_final(struct vfm_sha256 *s, uint8_t digest[VFM_SHA256_LEN]);

/* An HMAC-SHA256 key, hashed into its two pads once: each message then costs two finishes. */
struct vfm_hmac {
	struct vfm_sha256 inner; /* after key ^ ipad */
	struct vfm_sha256 outer; /* after key ^ opad */
};

void vfm_hmac_init(struct vfm_hmac *h, const uint8_t *key, size_t key_len);
/* HMAC of the message hashed into inner (a copy of h->inner plus the message). */
void vfm_hmac_finish(const struct vfm_hmac *h, struct vfm_sha256 *inner,
		     uint8_t digest[VFM_SHA256_LEN]);

#endif
