"""faultfs: a FUSE filesystem that keeps what was not made durable, and drops it on a power cut.

`kill -9` cannot show a store that acknowledges before its data reach the disk, since the
kernel's page cache survives the process. faultfs (in the spirit of Jepsen's lazyfs) is a
passthrough over a backing directory that tracks every change not yet made durable by fsync
(file data) or by fsync of the directory (names), and on a power cut puts the backing directory
back to its durable state. The model: `tracker.py`; the FUSE side: `fs.py`; the process:
`python3 -m harness.faultfs MOUNTPOINT --backing DIR --control SOCK`; mounting it from the
harness: `mount.py`; commands on its socket: `control.py`.
"""
