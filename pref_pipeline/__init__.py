"""pref-pipeline: synthetic preference data (prompt, chosen, rejected) with provenance.

The core is plain Python (no Dagster imports outside ``definitions.py``, the code location, and ``runs.py``,
the headless runs ``pref-pipeline run`` starts): configuration, providers, generation, judging, pairing,
gates, audit and export, each usable and testable alone.
"""

__version__ = "0.1.0"
