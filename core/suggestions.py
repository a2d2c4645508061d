"""Closest matches for a mistyped name: "did you mean ..." answers everywhere in Playbot."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Up to `n` candidates that look like `word`, best first, compared case-insensitively.

    Candidates that start with `word` (a prefix the user stopped typing) come first; then
    difflib's similarity ranking; failing both, candidates `word` abbreviates (its letters
    in order, from the first: "prd" → production). The returned names keep their original spelling.
    """
    if n <= 0:
        return []
    by_lower: dict[str, str] = {}
    for candidate in candidates:
        if candidate:
            by_lower.setdefault(candidate.lower(), candidate)
    needle = (word or "").strip().lower()
    if not needle or not by_lower:
        return []
    found: list[str] = []
    if len(needle) >= 2:
        found = sorted(low for low in by_lower if low.startswith(needle) and low != needle)
    for low in difflib.get_close_matches(needle, list(by_lower), n=n + len(found), cutoff=0.6):
        if low not in found:
            found.append(low)
    if not found and len(needle) >= 2:
        # an abbreviation ("prd", "stg", "dev"): its letters in order, from the first one
        found = sorted(low for low in by_lower if low[0] == needle[0] and _in_order(needle, low))
    if needle in by_lower and needle not in found:
        found.insert(0, needle)
    return [by_lower[low] for low in found[:n]]


def _in_order(letters: str, word: str) -> bool:
    rest = iter(word)
    return all(letter in rest for letter in letters)
