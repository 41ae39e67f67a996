/* The sysfs walker's second phase: order the functions by address, then tie each PF's virtfnN
 * links to its VFs by binary search, checking every VF's physfn link against the PF. */
#include <errno.h>
#include <stdlib.h>

#include "vfm_sysfs_internal.h"

static int addr_cmp(const struct vfm_pci_addr *a, const struct vfm_pci_addr *b)
{
	if (a->domain != b->domain)
		return a->domain < b->domain ? -1 : 1;
	if (a->bus != b->bus)
		return a->bus < b->bus ? -1 : 1;
	if (a->slot != b->slot)
		return a->slot < b->slot ? -1 : 1;
	if (a->function != b->function)
		return a->function < b->function ? -1 : 1;
	return 0;
}

static int addr_eq(const struct vfm_pci_addr *a, const struct vfm_pci_addr *b)
{
	return addr_cmp(a, b) == 0;
}

/* Functions with a bad name sort after every address. */
static int func_cmp(const void *pa, const void *pb)
{
	const struct vfm_pci_func *a = pa, *b = pb;
	int abad = !!(a->flags & VFM_FN_BADNAME), bbad = !!(b->flags & VFM_FN_BADNAME);

	if (abad || bbad)
		return abad - bbad;
	return addr_cmp(&a->addr, &b->addr);
}

static int key_cmp(const void *key, const void *elem)
{
	const struct vfm_pci_func *f = elem;

	if (f->flags & VFM_FN_BADNAME)
		return -1;
	return addr_cmp(key, &f->addr);
}

static int virtfn_cmp(const void *pa, const void *pb)
{
	const struct vfm_virtfn *a = pa, *b = pb;

	return a->index < b->index ? -1 : a->index > b->index;
}

int vfm_topo_find(const struct vfm_topo *t, const struct vfm_pci_addr *addr)
{
	const struct vfm_pci_func *f;

	if (!t->n_funcs)
		return -ENOENT;
	f = bsearch(addr, t->funcs, t->n_funcs, sizeof(*t->funcs), key_cmp);
	return f ? (int)(f - t->funcs) : -ENOENT;
}

/* What the VF that virtfn v of PF funcs[pf] names says back. */
static uint32_t virtfn_check(const struct vfm_topo *t, int pf, const struct vfm_virtfn *v)
{
	const struct vfm_pci_func *f;

	if (v->func < 0)
		return VFM_VIRTFN_MISSING;
	f = &t->funcs[v->func];
	if (f->flags & VFM_FN_VANISHED)
		return VFM_VIRTFN_VANISHED;
	if (!(f->flags & VFM_FN_VF))
		return VFM_VIRTFN_NOT_VF;
	if (!addr_eq(&f->physfn, &t->funcs[pf].addr))
		return VFM_VIRTFN_MISMATCH;
	if (f->flags & VFM_FN_LINKED)
		return VFM_VIRTFN_DUPLICATE;
	return VFM_VIRTFN_OK;
}

static void link_pf(struct vfm_topo *t, int pf)
{
	struct vfm_pci_func *p = &t->funcs[pf], *vf;
	struct vfm_virtfn *v = t->virtfns + p->virtfn_first;
	uint32_t i;
	int idx;

	qsort(v, p->virtfn_count, sizeof(*v), virtfn_cmp);
	for (i = 0; i < p->virtfn_count; i++, v++) {
		idx = vfm_topo_find(t, &v->addr);
		v->func = idx < 0 ? -1 : idx;
		v->state = virtfn_check(t, pf, v);
		if (v->state != VFM_VIRTFN_OK)
			continue;
		vf = &t->funcs[idx];
		vf->flags |= VFM_FN_LINKED;
		vf->pf = pf;
		vf->vf_index = (int32_t)v->index;
	}
}

void vfm_topo_link(struct vfm_topo *t)
{
	size_t i;

	if (t->n_funcs > 1)
		qsort(t->funcs, t->n_funcs, sizeof(*t->funcs), func_cmp);
	for (i = 0; i < t->n_funcs && i <= INT32_MAX; i++)
		if ((t->funcs[i].flags & (VFM_FN_PF | VFM_FN_VANISHED)) == VFM_FN_PF)
			link_pf(t, (int)i);
}
