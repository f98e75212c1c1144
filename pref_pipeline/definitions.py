"""The Dagster code location: what ``workspace.yaml``, ``dagster dev`` and ``dg`` load.

It builds the definitions from the Dagster layers (``assets/``, ``sensors/``), and only when asked:
importing it reads no file and creates no folder (``defs`` is lazy). The configuration comes from
``PREF_PIPELINE_CONFIG`` (unset: the embedded offline default), the home from ``PREF_PIPELINE_HOME``;
``runs.py`` (what ``pref-pipeline run`` executes) builds the same definitions for the file and home it is given.
Nothing here imports ``runs`` or ``cli``: they sit above the code location.
"""

from __future__ import annotations

import os

import dagster as dg

from pref_pipeline.config import CONFIG_ENV, ConfigError, PipelineConfig, load_config
from pref_pipeline.paths import Home
from pref_pipeline.preload import step_preload
from pref_pipeline.runner import freeze_heap

def config_from_env() -> PipelineConfig:
    """The configuration named by ``PREF_PIPELINE_CONFIG`` (unset: the embedded default), read now."""
    return load_config(os.environ.get(CONFIG_ENV))


def build_definitions(config: PipelineConfig, home: Home, *, progress: bool = False,
                      loggers: dict[str, dg.LoggerDefinition] | None = None) -> dg.Definitions:
    """Every asset, check, job, sensor and schedule of one configuration, writing under ``home``. ``loggers``
    replace Dagster's console logger in every job (a run names the ones it uses in its run config)."""
    from assets import build_pipeline_assets
    from assets.calibration import build_calibration_assets, build_calibration_job
    from assets.jobs import pipeline_job, rebuild_job, rejudge_job, rollup_job
    from assets.resources import pipeline_resources
    from sensors import build_automation

    sensors, schedules = build_automation(config, config_from_env)
    definitions = dg.Definitions(
        assets=[*build_pipeline_assets(config), *build_calibration_assets(config)],
        jobs=[pipeline_job, rejudge_job, rebuild_job, rollup_job, build_calibration_job(config)],
        sensors=sensors,
        schedules=schedules,
        resources=pipeline_resources(home, progress=progress),
        executor=executor_for(config),
        loggers=loggers,
    )
    freeze_heap()  # the libraries and definitions live as long as the process
    return definitions


def executor_for(config: PipelineConfig) -> dg.ExecutorDefinition:
    """The executor the configuration's ``executor`` names (what a launched run uses; ``pref-pipeline run``
    executes each run in its own process whatever it says)."""
    if config.executor == "multiprocess":
        return multiprocess_executor(config)
    if config.executor == "dask":
        return dask_executor(config)
    return dg.in_process_executor


def dask_executor(config: PipelineConfig) -> dg.ExecutorDefinition:
    """``executor: dask``: each step a task on the Dask cluster at ``dask.address``, or on a ``LocalCluster`` of
    ``dask.n_workers`` processes started for the run (dagster-dask's executor: ``assets/dask_executor.py``)."""
    try:
        from assets.dask_executor import pipeline_dask_executor
    except ImportError as exc:
        raise ConfigError("executor: dask needs dagster-dask: pip install 'pref-pipeline[distributed]'") from exc
    spec = config.dask
    return pipeline_dask_executor.configured({"address": spec.address} if spec.address else
                                             {"n_workers": spec.n_workers}, name="dask")


def multiprocess_executor(config: PipelineConfig | None = None) -> dg.ExecutorDefinition:
    """Dagster's multiprocess executor (``executor: multiprocess``), starting steps from a forkserver."""
    return dg.multiprocess_executor.configured(
        {"start_method": {"forkserver": {"preload_modules": step_preload(config)}}}, name="multiprocess")


def configuration_load_error(error: ConfigError) -> Exception:
    """The UI's code-location error for a configuration that cannot be used: the message alone.

    Dagster shows any other load error with the frames of its gRPC server, the code location loader
    and the YAML reader (about 40 lines) under it. A ``DagsterUserCodeProcessError`` holding exactly
    one error description is shown as that description (``serializable_error_info_from_exc_info``
    "hoists" it), so the UI and ``dagster dev``'s log show only which file and key are wrong.
    """
    from dagster._core.errors import DagsterUserCodeProcessError
    from dagster._utils.error import SerializableErrorInfo

    message = f"{error}\n(set by {CONFIG_ENV}; fix the file, then Reload the code location)"
    info = SerializableErrorInfo(message=message, stack=[], cls_name=type(error).__name__)
    return DagsterUserCodeProcessError(message, user_code_process_error_infos=[info])


@dg.definitions
def defs() -> dg.Definitions:
    try:
        config = config_from_env()
    except ConfigError as error:
        raise configuration_load_error(error) from None
    return build_definitions(config, Home.from_env())
