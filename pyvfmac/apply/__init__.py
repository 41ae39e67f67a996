"""Boot-time bulk programming: ``vfmac apply``. One module per concern, each importing only the
ones before it:

- :mod:`~pyvfmac.apply.config`: the TOML configuration, parsed and validated (no host);
- :mod:`~pyvfmac.apply.derive`: derived MACs (the formula, a compatibility promise);
- :mod:`~pyvfmac.apply.plan`: the configuration resolved against the host, pure;
- :mod:`~pyvfmac.apply.report`: what was or would be changed, as values and lines;
- :mod:`~pyvfmac.apply.run`: the run (read, plan, sriov_numvfs, program, verify); prints nothing.

The netlink core and the sysfs scan are imported only when a run starts.
"""

from __future__ import annotations

from .config import DEFAULT_CONFIG, Config, PfEntry, VfEntry, load_config, parse_config
from .derive import derive_mac, pf_identity
from .plan import Collision, HostView, PfPlan, Plan, VfPlan, build_plan, diff_vf, host_view
from .report import ApplyReport, PfReport, VfFailure, dry_run_lines, plan_report
from .run import needs_topology, run_apply, wait_for_vfs

__all__ = [
    "DEFAULT_CONFIG",
    "ApplyReport",
    "Collision",
    "Config",
    "HostView",
    "PfEntry",
    "PfPlan",
    "PfReport",
    "Plan",
    "VfEntry",
    "VfFailure",
    "VfPlan",
    "build_plan",
    "derive_mac",
    "diff_vf",
    "dry_run_lines",
    "host_view",
    "load_config",
    "needs_topology",
    "parse_config",
    "pf_identity",
    "plan_report",
    "run_apply",
    "wait_for_vfs",
]
