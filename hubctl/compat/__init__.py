"""Compatibility (used by ``check`` and by the run before it loads anything): does a set (a base and its
adapters) fit together, and if not, why.

    check.py       the set check, pure: Probe values (+ declared manifest facts) -> Verdict with plain-language
                   reasons: check_set, Declared, Verdict, Problem
    gather.py      its I/O edge: paths, URLs, store blobs and package names -> probes -> check_set:
                   check_paths, gather_and_check (``hubctl check``)
    shapes.py      per-family shape tables (registry/shapes/<family>.json) for a base that is not on disk
    shapes_gen.py  their generator, on torch's meta device (``python -m hubctl.compat.shapes_gen``)

Headers, never weights: nothing here imports torch except the generator, inside its functions.
"""
