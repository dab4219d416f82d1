"""The way in: what people already have (model folders of other tools) and already share (PNGs, workflows, AIRs)
turned into hubctl's store, registries and locks.

    layouts.py         which tool a folder belongs to (A1111/Forge, ComfyUI with extra_model_paths.yaml,
                       InvokeAI) and its model folders, with the kind each folder holds: detect_layout
    scan.py            walking those folders: weight files found, symlink loops and unreadable entries reported in
                       one line each: scan
    state.py           what adopt did, per file (path, stat, hashes, package) in the state database: the cache that
                       makes a second run a no-op, and the hash forms import matches against
    known.py           what a hash is: registry packages by sha256, files of the store's roots, adopted files (full
                       hashes and the short forms users see: AutoV2, AutoV3 / LoRA hash, AutoV1): KnownHashes
    local_registry.py  the registries hubctl writes itself (``adopted``: local packages from adopted files;
                       ``civitai``: packages for Civitai model versions), registered like any registry
    adopt.py           ``hubctl adopt DIR``: classify, hash once, match, take into the store (reflink, hard link,
                       copy), local packages, ``--replace`` with links, roots, the report: adopt_folder
    refs.py            references read from what people share (A1111/Forge infotext, hubctl's PNG chunk, ComfyUI
                       prompt/workflow JSON, AIR lists), with size and depth limits: read_references
    importer.py        ``hubctl import SOURCE``: each reference resolved by hash (registries, the store, adopted
                       files, then Civitai), then hubctl.toml and its lock written: import_source

Importing this package imports nothing else. Never unpickles anything; never deletes a user's file that is not
already safe in the store (a verified blob that a root keeps).
"""
