"""Running resolvelib over the provider: :func:`search` returns the chosen candidate of each identifier.

resolvelib's own result builder (``resolvelib.resolvers.resolution._build_result`` in 1.0 to 1.2.1) keeps
only the pins connected to the root, and finds them with a recursive walk over each criterion's parents
that remembers only what it proved connected. When backtracking leaves behind pins from an abandoned
branch whose requirements form a cycle (``pa 1.0 -> pc>=1.2`` and ``pc 1.2 -> pa>=1.0``, both reached
only from a version of ``pb`` that was dropped), the walk goes round that cycle until Python's recursion
limit (``RecursionError``), after the search itself has succeeded. :func:`search` runs the same search
(``resolvelib.resolvers.Resolution``) and builds the result with a breadth-first walk from the root, which
ends on any graph. Pure: no I/O.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Sequence

__all__ = ["search"]


def search(provider: Any, requirements: Sequence[Any], *, max_rounds: int) -> dict[Any, Any]:
    """The pins resolvelib finds for ``requirements`` (identifier -> candidate), those connected to the
    root only. Raises resolvelib's ``ResolutionImpossible`` / ``ResolutionTooDeep`` as it does."""
    from resolvelib import BaseReporter
    from resolvelib.resolvers import Resolution

    state = Resolution(provider, BaseReporter()).resolve(list(requirements), max_rounds=max_rounds)
    return connected_pins(state.mapping, state.criteria)


def connected_pins(mapping: dict[Any, Any], criteria: dict[Any, Any]) -> dict[Any, Any]:
    """The pins of ``mapping`` reachable from the root (``None``) through the parents recorded in
    ``criteria``; each visited once, so cycles end."""
    key_of = {id(cand): key for key, cand in mapping.items()}
    children: dict[Any, list[Any]] = {}
    for key, criterion in criteria.items():
        for parent in criterion.iter_parent():
            pkey = None if parent is None else key_of.get(id(parent), _STALE)
            if pkey is not _STALE:
                children.setdefault(pkey, []).append(key)
    seen: set[Any] = {None}
    todo: deque[Any] = deque([None])
    while todo:
        for child in children.get(todo.popleft(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return {k: v for k, v in mapping.items() if k in seen}


_STALE = object()  # a parent that is no longer pinned (an abandoned branch): no route through it
