"""The store: content-addressed blobs and what references them.

    blobs.py      the store itself: blobs by sha256, written once through a hash-checked temporary file and an
                  atomic rename, per-blob locks, the verification cache (ctime-aware), quarantine, gc: Store,
                  FetchResult, HashMismatch
    partial.py    resumable partial downloads and the hasher that runs in the same pass: PartialFile, Hasher
    state.py      the verification cache's table in the state database and the sqlite3 read path: read_state
    roots.py      what keeps blobs alive: the install set and every synced lock (by path and the sha256 of its
                  bytes), their packages, whether each is still live: register_lock_root, live_roots, pinned_blobs
    installed.py  the install set and the housekeeping over every root: installed_packages, installed_paths,
                  package_roots (what `hubctl list` shows), uninstall, verify_installed, gc
    views.py      folders laid out for other tools (diffusers, A1111, ComfyUI, InvokeAI), made of links: export;
                  and the one builder of hubctl's own views, checked on every use: build_view
    hashes.py     the one whole-file sha256 (sha256_file) and the hashes users see: AutoV2, AutoV1, data-only

The store knows blobs and references only (never manifests); it never talks to the network (sources write
into what it hands them). Importing this package imports nothing else.
"""
