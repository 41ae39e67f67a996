/* A netlink socket that is not one: replies come from the fuzzer's input.
 *
 * The harness links with -Wl,--wrap=recvfrom,--wrap=sendto: the core's recvfrom / sendto calls
 * (csrc/vfm_socket.c) reach these fakes, so that the real receive, ACK and dump loops run over
 * datagrams the fuzzer writes. Input format (after the harness's own option bytes):
 *   repeated { u32 len (little endian; clamped to what is left), u8 flags, len bytes }
 * flags: FAKE_STAMP sets every complete message's nlmsg_seq to the socket's last request and
 * nlmsg_pid to its portid (so that mutations need not guess them); FAKE_FOREIGN makes the
 * datagram come from a non-kernel sender. Once the datagrams run out, recvfrom fails with EAGAIN
 * (the core's -ETIMEDOUT), as a socket with SO_RCVTIMEO does. */
#ifndef FUZZ_FAKE_SOCK_H
#define FUZZ_FAKE_SOCK_H

#include <stddef.h>
#include <stdint.h>

#include "vfm_internal.h"

#define FAKE_STAMP 0x01u
#define FAKE_FOREIGN 0x02u
#define FAKE_PORTID 0x4242u
#define FAKE_MAX_DGRAMS 256

/* Split data into datagrams (copied: each its own allocation, exact size) and open a fake socket
 * over them; fake_close frees both. */
struct vfm_sock *fake_open(const uint8_t *data, size_t size, int cap_ack);
void fake_close(struct vfm_sock *s);
/* The messages of datagram i as read-only bytes (for the harness's own checks), or NULL. */
const uint8_t *fake_dgram(size_t i, size_t *len);
size_t fake_ndgrams(void);

#endif
