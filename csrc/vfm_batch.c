#include "vfm_netlink.h"
