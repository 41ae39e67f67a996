/* The strict number parsers of attribute files and PCI addresses: vfm_sysfs_parse_hex
 * ("0x8086\n"), vfm_sysfs_parse_dec ("7\n", with a maximum), vfm_pci_addr_parse
 * ("0000:06:10.0"). Input: option byte (the maximum: UINT32_MAX, INT32_MAX, 65535 or 4096),
 * then the text (NUL-terminated by the harness; an embedded NUL ends it). */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vfm_sysfs_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t maxes[] = { UINT32_MAX, INT32_MAX, 65535, 4096 };
	struct vfm_pci_addr a;
	uint32_t v, max;
	char *s, back[64];

	if (size < 1)
		return 0;
	max = maxes[data[0] & 3];
	s = malloc(size);
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	if (vfm_sysfs_parse_hex(s, &v) == 0)
		assert(s[0] == '0' && (s[1] == 'x' || s[1] == 'X'));
	if (vfm_sysfs_parse_dec(s, max, &v) == 0) {
		assert(v <= max);
		snprintf(back, sizeof(back), "%u", v);
		assert(strncmp(back, s, strlen(back)) == 0 || s[0] == '0');
	}
	if (vfm_pci_addr_parse(s, &a) == 0) {
		/* canonical: it prints back as the kernel would */
		assert(a.slot <= 0x1f && a.function <= 7 && a.bus <= 0xff);
		snprintf(back, sizeof(back), "%04x:%02x:%02x.%x", a.domain, a.bus, a.slot, a.function);
		assert(strcmp(back, s) == 0);
	}
	free(s);
	return 0;
}
