"""Closest matches: what a mistyped name is answered with."""

from __future__ import annotations

from core.suggestions import closest


def test_a_typo_suggests_the_intended_name_first():
    assert closest("deploi", ["ping", "deploy", "fail", "slow"])[0] == "deploy"


def test_matching_ignores_case_but_keeps_the_original_spelling():
    assert closest("WEB-01", ["web-01", "ping"]) == ["web-01"]


def test_a_prefix_the_user_stopped_typing_suggests_every_completion():
    assert closest("prod", ["production", "staging", "prod-01"], n=3) == ["prod-01", "production"]


def test_nothing_alike_suggests_nothing():
    assert closest("zzzz", ["ping", "deploy"]) == []


def test_at_most_n_suggestions_are_given():
    names = [f"web-0{i}" for i in range(1, 10)]
    assert len(closest("web-0", names, n=3)) == 3


def test_empty_word_or_candidates_suggest_nothing():
    assert closest("", ["ping"]) == []
    assert closest("ping", []) == []


def test_an_abbreviation_suggests_the_word_it_abbreviates():
    environments = ["production", "staging", "development"]

    assert closest("prd", environments) == ["production"]
    assert closest("stg", environments) == ["staging"]
    assert closest("dvp", environments) == ["development"]
    assert closest("rpd", environments) == []  # letters out of order, or from another start
