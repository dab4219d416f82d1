"""The registry, first stage of the flow (registry -> resolve -> lock -> fetch -> store -> run): what
packages exist, with their versions, variants, files and families.

    fields.py         the field rules manifests, families and locks share: package names, family ids,
                      variant names, file paths, requirements (check_*), one_line
    manifest.py       the manifest model (pydantic) and its TOML reader: Manifest, Version, Variant, FileRef,
                      parse_source, load_manifest, parse_manifest, with_local_sources_under
    families.py       families as data (families.toml): Family, FamilyTable, load_families, default_families
    configured.py     the configured registries (registries.toml; bundled, folder, file, url): RegistryEntry,
                      list_registries, get_registry; cached copies of URL indexes
    compile.py        registries -> the SQLite index (atomic), and ``registry build``'s static index file:
                      rebuild_index, build_index_file, registry_fingerprint
    index.py          the index, read side (plain sqlite3): Index, PackageRow
    trust.py          what a registry may say, by where it comes from (called by compile): no credentials in
                      sources, only remote sources from a URL registry, no silent family redefinition:
                      check_manifest_sources, check_families
    manage.py         keeping the index in step: open_index (compile when stale), add_registry,
                      remove_registry, update_registries
    schema_export.py  JSON Schemas of hubctl's file formats (``python -m hubctl.registry.schema_export``)

Importing this package imports nothing else: each module is imported by those that need it, so the
read path (``hubctl search``) stays free of pydantic and SQLAlchemy.
"""
