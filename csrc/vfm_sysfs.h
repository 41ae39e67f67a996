/* pyvfmac C core: SR-IOV topology from sysfs (placeholder until the walker lands). */
#ifndef VFM_SYSFS_H
#define VFM_SYSFS_H
int vfm_sysfs_version(void);
#endif
