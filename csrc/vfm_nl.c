#include "vfm_netlink.h"
#include <errno.h>
int vfm_sock_open(struct vfm_sock **out, uint32_t bufsize) { (void)out; (void)bufsize; return -ENOSYS; }
void vfm_sock_close(struct vfm_sock *s) { (void)s; }
int vfm_vf_apply(struct vfm_sock *s, const struct vfm_vf_change *ch, size_t n, const struct vfm_batch_opts *opts, struct vfm_vf_result *res) { (void)s; (void)ch; (void)n; (void)opts; (void)res; return -ENOSYS; }
int vfm_vf_encode(const struct vfm_vf_change *ch, size_t n, uint32_t max_per_msg, uint32_t seq, uint8_t *buf, size_t buflen, size_t *taken) { (void)ch; (void)n; (void)max_per_msg; (void)seq; (void)buf; (void)buflen; (void)taken; return -ENOSYS; }
int vfm_links_get(struct vfm_sock *s, int32_t ifindex, const char *name, struct vfm_links **out, char *errmsg, size_t errlen) { (void)s; (void)ifindex; (void)name; (void)out; (void)errmsg; (void)errlen; return -ENOSYS; }
void vfm_links_free(struct vfm_links *l) { (void)l; }
int vfm_links_parse(const uint8_t *buf, size_t len, struct vfm_links **out) { (void)buf; (void)len; (void)out; return -ENOSYS; }
int vfm_link_set_addr(struct vfm_sock *s, int32_t ifindex, const uint8_t *addr, size_t len, char *errmsg, size_t errlen) { (void)s; (void)ifindex; (void)addr; (void)len; (void)errmsg; (void)errlen; return -ENOSYS; }
int vfm_vf_port_encode(const struct vfm_port_req *req, uint32_t seq, uint8_t *buf, size_t buflen) { (void)req; (void)seq; (void)buf; (void)buflen; return -ENOSYS; }
int vfm_vf_port_set(struct vfm_sock *s, const struct vfm_port_req *req, char *errmsg, size_t errlen) { (void)s; (void)req; (void)errmsg; (void)errlen; return -ENOSYS; }
