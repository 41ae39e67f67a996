/* The walker's second phase, vfm_topo_link: functions sorted by address, each PF's virtfnN links
 * tied to its VFs (physfn checked), then vfm_topo_find. What the readers hand it comes from the
 * input: 12 bytes per function and 8 per virtfn link (see below), up to 256 functions. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "vfm_sysfs_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* small address space, so that links and physfns meet */
static struct vfm_pci_addr addr_of(const uint8_t *p)
{
	struct vfm_pci_addr a = { p[0] & 1, p[1] & 7, p[2] & 0x1f, p[2] >> 5 };

	return a;
}

static int addr_le(const struct vfm_pci_addr *a, const struct vfm_pci_addr *b)
{
	if (a->domain != b->domain)
		return a->domain < b->domain;
	if (a->bus != b->bus)
		return a->bus < b->bus;
	if (a->slot != b->slot)
		return a->slot < b->slot;
	return a->function <= b->function;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vfm_topo t;
	size_t nf, nv, i, vi = 0;

	if (size < 1)
		return 0;
	nf = data[0];
	data++;
	size--;
	if (size < nf * 12)
		nf = size / 12;
	memset(&t, 0, sizeof(t));
	t.funcs = calloc(nf ? nf : 1, sizeof(*t.funcs));
	t.n_funcs = nf;
	/* virtfn links after the functions: each PF claims the next p[7] & 15 of them */
	nv = (size - nf * 12) / 8;
	t.virtfns = calloc(nv ? nv : 1, sizeof(*t.virtfns));
	for (i = 0; i < nf; i++) {
		const uint8_t *p = data + 12 * i;
		struct vfm_pci_func *f = &t.funcs[i];
		uint16_t flags;

		memcpy(&flags, p + 5, 2);
		f->addr = addr_of(p);
		f->flags = flags & 0x0fffu & ~VFM_FN_LINKED; /* the phase sets LINKED */
		f->physfn = addr_of(p + 8);
		f->pf = f->vf_index = -1;
		f->iommu_group = -1;
		if (f->flags & VFM_FN_PF) {
			uint32_t k = p[7] & 15;

			if (k > nv - vi)
				k = (uint32_t)(nv - vi);
			f->virtfn_first = (uint32_t)vi;
			f->virtfn_count = k;
			vi += k;
		}
	}
	for (i = 0; i < nv; i++) {
		const uint8_t *p = data + 12 * nf + 8 * i;

		t.virtfns[i].index = p[3];
		t.virtfns[i].addr = addr_of(p);
		t.virtfns[i].func = -1;
	}
	t.n_virtfns = nv;
	vfm_topo_link(&t);
	for (i = 0; i < nf; i++) {
		const struct vfm_pci_func *f = &t.funcs[i];

		if (i > 0 && !(f->flags & VFM_FN_BADNAME) && !(t.funcs[i - 1].flags & VFM_FN_BADNAME))
			assert(addr_le(&t.funcs[i - 1].addr, &f->addr));
		if (f->flags & VFM_FN_LINKED) {
			assert(f->pf >= 0 && (size_t)f->pf < nf);
			assert(t.funcs[f->pf].flags & VFM_FN_PF);
		}
		if (!(f->flags & VFM_FN_BADNAME)) {
			int k = vfm_topo_find(&t, &f->addr);

			assert(k >= 0 && memcmp(&t.funcs[k].addr, &f->addr, sizeof(f->addr)) == 0);
		}
		for (uint32_t v = 0; v < f->virtfn_count &&
				   (f->flags & (VFM_FN_PF | VFM_FN_VANISHED)) == VFM_FN_PF; v++) {
			const struct vfm_virtfn *w = &t.virtfns[f->virtfn_first + v];

			assert(w->state <= VFM_VIRTFN_DUPLICATE);
			assert(w->func >= -1 && w->func < (int32_t)nf);
			if (v)
				assert(t.virtfns[f->virtfn_first + v - 1].index <= w->index);
		}
	}
	free(t.funcs);
	free(t.virtfns);
	return 0;
}
