"""vfmac-cni: a CNI plugin (spec 1.1.0) that gives a pod or a KubeVirt VM an SR-IOV VF with a
fixed MAC and always gives it back exactly as it was (see docs/kubernetes.md).

Modules by concern: :mod:`.config` (environment and sriov-cni's network configuration),
:mod:`.result` (results, errors, VERSION), :mod:`.codes` (error codes), :mod:`.ipam` (delegation),
:mod:`.netns` (the VF netdev in the pod's namespace and on the host), :mod:`.records` (what is
kept beside the saved original), :mod:`.node` (what a call works with: store, pod table,
rtnetlink, host namespace), :mod:`.plugin` (ADD, DEL, CHECK, GC, STATUS), :mod:`.main` (the
``vfmac-cni`` entry point). Nothing heavy is imported here: the plugin runs at every pod start."""
