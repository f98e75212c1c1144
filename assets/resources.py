"""The run's resources: where it writes, its tables' IO manager, and the LLM call session its steps open.

Assets, checks and sensors get these from Dagster (``resources={...}`` in the code location, or a
test's own), never from environment variables: a test that wants another home gives another
``PipelineHome``.
"""


import dagster as dg

from assets.storage import ParquetTables
from pref_pipeline.paths import Home
from pref_pipeline.providers.client import CallSettings


class PipelineHome(dg.ConfigurableResource):
    """Where a run writes everything (``PREF_PIPELINE_HOME``): the tables (Parquet files), the response
    cache, exports, reports, pending provider batch jobs. ``root`` is a folder or an object-store URL; for a
    URL, ``local_root`` (``PREF_PIPELINE_LOCAL_HOME``) holds what must be local files."""

    root: str
    local_root: str | None = None

    def paths(self) -> Home:
        """The home's (local) folders, created if missing."""
        return Home.at(self.root, local=self.local_root).ensure()


class LLMCalls(dg.ConfigurableResource):
    """How a step's LLM calls keep state: the home's response cache and provider-batch folder, and
    whether to draw a progress bar per step (the CLI turns it on at a terminal)."""

    home: PipelineHome
    progress: bool = False

    def settings(self) -> CallSettings:
        return CallSettings.under(self.home.paths(), progress=self.progress)


class PipelineIOManager(dg.ConfigurableIOManagerFactory):
    """Every asset's table as Parquet files under the pipeline home (``home`` resource; ``assets/storage.py``)."""

    home: PipelineHome

    def create_io_manager(self, context) -> ParquetTables:
        return ParquetTables(self.home.paths())


def pipeline_resources(home: Home, *, progress: bool = False) -> dict:
    """Every resource the assets need, for one home: tables, files and LLM calls all land under it."""
    home_resource = PipelineHome(root=home.location, local_root=str(home.root) if home.url else None)
    return {
        "home": home_resource,
        "llm": LLMCalls(home=home_resource, progress=progress),
        "io_manager": PipelineIOManager(home=home_resource),
    }
