"""The store: content-addressed blobs and what references them.

    blobs.py      the store itself: blobs by sha256, written once through a hash-checked temporary file and an
                  atomic rename, per-blob locks, the verification cache, gc: Store, FetchResult, HashMismatch
    partial.py    resumable partial downloads and the hasher that runs in the same pass: PartialFile, Hasher
    state.py      the store's table in the state database and the sqlite3 read path: read_state,
                  ensure_state_tables
    installed.py  what is installed (records per package) and the housekeeping over it: installed_packages,
                  installed_paths, uninstall, verify_installed, gc
    views.py      folders laid out for other tools (diffusers, A1111, ComfyUI, InvokeAI), made of links: export
    hashes.py     the file hashes users see: sha256, AutoV2, AutoV1, the data-only hash

The store knows blobs and references; it never talks to the network (sources write into what it hands
them). Importing this package imports nothing else.
"""
