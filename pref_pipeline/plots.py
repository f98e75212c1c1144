"""Moved to ``pref_pipeline.audit.plots``; this name stays importable for code that still uses it."""

from pref_pipeline.audit.plots import (  # noqa: F401
    PLOT_DPI,
    PLOTS,
    data_uri,
    drift_plot,
    length_by_category_plot,
    length_difference_plot,
    make_plots,
    position_plot,
)
