"""Judging: prompts for judges, the strict verdict parser and swap-consistent pairwise judging."""
