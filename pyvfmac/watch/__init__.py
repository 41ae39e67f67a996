"""``vfmac watch``: keep the host as configured while it runs.

- :mod:`.events`: the kernel's events (uevents for ``pci`` and ``net``, rtnetlink link events),
  read from two netlink sockets and parsed into values.
- :mod:`.debounce`: per-PF batching (a quiet period, a maximum delay).
- :mod:`.notify`: the systemd notify protocol (``$NOTIFY_SOCKET``).
- :mod:`.daemon`: the loop (selectors, signals through a wake-up fd, no polling).
"""
