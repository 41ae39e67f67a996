#include "vfm_sysfs.h"
int vfm_sysfs_version(void) { return 0; }
