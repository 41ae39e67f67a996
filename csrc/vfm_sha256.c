/* SHA-256 (FIPS 180-4 section 6.2) and HMAC-SHA256 (RFC 2104). Checked against Python's hashlib
 * and hmac by tests/test_apply_derive.py. */
#include <string.h>

#include "vfm_sha256.h"

static const uint32_t round_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t rotr(uint32_t x, unsigned int n)
{
	return (x >> n) | (x << (32 - n));
}

static uint32_t load_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void store_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* The compression function over one 64-byte block: the working variables a..h of FIPS 180-4
 * 6.2.2, updated into the hash value. */
static void compress(uint32_t hash[8], const uint8_t *block)
{
	uint32_t w[64];
	uint32_t a = hash[0], b = hash[1], c = hash[2], d = hash[3];
	uint32_t e = hash[4], f = hash[5], g = hash[6], h = hash[7];

	for (unsigned int t = 0; t < 16; t++)
		w[t] = load_be32(block + 4 * t);
	for (unsigned int t = 16; t < 64; t++) {
		uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
		uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);

		w[t] = w[t - 16] + s0 + w[t - 7] + s1;
	}
	for (unsigned int t = 0; t < 64; t++) {
		uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) +
			      round_k[t] + w[t];
		uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));

		h = g;
		g = f;
		f = e;
		e = d + t1;
		d = c;
		c = b;
		b = a;
		a = t1 + t2;
	}
	hash[0] += a;
	hash[1] += b;
	hash[2] += c;
	hash[3] += d;
	hash[4] += e;
	hash[5] += f;
	hash[6] += g;
	hash[7] += h;
}

void vfm_sha256_init(struct vfm_sha256 *s)
{
	static const uint32_t initial[8] = {
		0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
		0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
	};

	memcpy(s->h, initial, sizeof(initial));
	s->total = 0;
	s->used = 0;
}

void vfm_sha256_update(struct vfm_sha256 *s, const void *data, size_t len)
{
	const uint8_t *p = data;

	s->total += len;
	while (len > 0) {
		size_t take = VFM_SHA256_BLOCK - s->used;

		if (take > len)
			take = len;
		memcpy(s->block + s->used, p, take);
		s->used += take;
		p += take;
		len -= take;
		if (s->used == VFM_SHA256_BLOCK) {
			compress(s->h, s->block);
			s->used = 0;
		}
	}
}

void vfm_sha256_final(struct vfm_sha256 *s, uint8_t digest[VFM_SHA256_LEN])
{
	uint64_t bits = s->total * 8;
	uint8_t tail[8];

	s->block[s->used++] = 0x80;
	if (s->used > VFM_SHA256_BLOCK - 8) {
		memset(s->block + s->used, 0, VFM_SHA256_BLOCK - s->used);
		compress(s->h, s->block);
		s->used = 0;
	}
	memset(s->block + s->used, 0, VFM_SHA256_BLOCK - 8 - s->used);
	store_be32(tail, (uint32_t)(bits >> 32));
	store_be32(tail + 4, (uint32_t)bits);
	memcpy(s->block + VFM_SHA256_BLOCK - 8, tail, 8);
	compress(s->h, s->block);
	for (unsigned int i = 0; i < 8; i++)
		store_be32(digest + 4 * i, s->h[i]);
}

/* One pad: the key (hashed first when longer than a block), zero-filled, XORed with pad. */
static void hash_pad(struct vfm_sha256 *s, const uint8_t *key, size_t key_len, uint8_t pad)
{
	uint8_t block[VFM_SHA256_BLOCK] = {0};

	memcpy(block, key, key_len);
	for (unsigned int i = 0; i < VFM_SHA256_BLOCK; i++)
		block[i] ^= pad;
	vfm_sha256_init(s);
	vfm_sha256_update(s, block, sizeof(block));
}

void vfm_hmac_init(struct vfm_hmac *h, const uint8_t *key, size_t key_len)
{
	uint8_t hashed[VFM_SHA256_LEN];

	if (key_len > VFM_SHA256_BLOCK) {
		struct vfm_sha256 s;

		vfm_sha256_init(&s);
		vfm_sha256_update(&s, key, key_len);
		vfm_sha256_final(&s, hashed);
		key = hashed;
		key_len = sizeof(hashed);
	}
	hash_pad(&h->inner, key, key_len, 0x36);
	hash_pad(&h->outer, key, key_len, 0x5c);
}

void vfm_hmac_finish(const struct vfm_hmac *h, struct vfm_sha256 *inner,
		     uint8_t digest[VFM_SHA256_LEN])
{
	uint8_t inner_digest[VFM_SHA256_LEN];
	struct vfm_sha256 outer = h->outer;

	vfm_sha256_final(inner, inner_digest);
	vfm_sha256_update(&outer, inner_digest, sizeof(inner_digest));
	vfm_sha256_final(&outer, digest);
}
