"""The lock: the exact set a project or script asked for, pinned file by file.

    lockfile.py  the lock's value types (Lock, LockedPackage, LockedFile) and its byte-stable TOML I/O:
                 read_lock, loads_lock, write_lock, dumps_lock, inputs_digest
    pin.py       a resolution -> locked packages (every file with commit, size, sha256): pin; which pins a
                 relock keeps (repin_reason)
    diff.py      which artefacts differ between two locks, in words: diff_packages, format_change
    schema.py    the lock file's JSON Schema
    project.py   what is asked for: hubctl.toml, [tool.hubctl], a script's ``# /// hubctl`` block:
                 Project, find_project, read_script, write_requires
    freshness.py is this lock still valid? the one answer for lock --check, lock, sync, run and generate:
                 plan_lock (what `hubctl lock` writes), freshness, stale_message, read_fresh_lock
    workflow.py  lock / sync / run / install by name: lock_project, ensure_lock, sync_lock, run_script,
                 install

Importing this package imports nothing else.
"""
