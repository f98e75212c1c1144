"""Stable ids and seeds: a row's id and a call's seed are hashes of what identifies it, so a re-run
makes the same ids, asks for the same samples and hits the response cache."""

from __future__ import annotations

import hashlib


def short_hash(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]


def derived_seed(*parts: object) -> int:
    """A reproducible 31-bit seed from any identifying parts."""
    return int(short_hash(*parts)[:8], 16) & 0x7FFFFFFF


def pair_id_of(comparison_id: str) -> str:
    """``pair-<hash>`` of ``cmp-<hash>``: the pair a comparison becomes has the comparison's hash."""
    return "pair-" + str(comparison_id).removeprefix("cmp-")


def comparison_id_of(pair_id: str) -> str:
    """``cmp-<hash>`` of ``pair-<hash>``."""
    return "cmp-" + str(pair_id).removeprefix("pair-")
