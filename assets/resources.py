"""The run's resources: where it writes, and the LLM call session its steps open.

Assets, checks and sensors get these from Dagster (``resources={...}`` in the code location, or a
test's own), never from environment variables: a test that wants another home gives another
``PipelineHome``.
"""


import dagster as dg

from pref_pipeline.paths import SCHEMA, Home
from pref_pipeline.providers.client import CallSettings


class PipelineHome(dg.ConfigurableResource):
    """The folder a run writes everything to (``PREF_PIPELINE_HOME``): the DuckDB file, the response
    cache, exports, reports, pending provider batch jobs."""

    root: str

    def paths(self) -> Home:
        """The home's folders, created if missing."""
        return Home.at(self.root).ensure()


class LLMCalls(dg.ConfigurableResource):
    """How a step's LLM calls keep state: the home's response cache and provider-batch folder, and
    whether to draw a progress bar per step (the CLI turns it on at a terminal)."""

    home: PipelineHome
    progress: bool = False

    def settings(self) -> CallSettings:
        return CallSettings.under(self.home.paths(), progress=self.progress)


def pipeline_resources(home: Home, *, progress: bool = False) -> dict:
    """Every resource the assets need, for one home: tables, files and LLM calls all land under it."""
    from assets.storage import PipelineIOManager

    home_resource = PipelineHome(root=str(home.root))
    return {
        "home": home_resource,
        "llm": LLMCalls(home=home_resource, progress=progress),
        "io_manager": PipelineIOManager(database=str(home.database), schema=SCHEMA),
    }
