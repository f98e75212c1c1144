"""``executor: dask``: dagster-dask's executor, with two fixes today's dask and parallel runs need.

dagster-dask 0.29 submits each step as ``client.submit(query_on_dask_worker, deps, recon_job, dagster_run, ...)``.
Since dask 2024.11, ``Client.submit`` parses a task's arguments into its task spec, walking into every tuple
and named tuple; Dagster's run record is a named tuple holding ``@record`` values (the run's pool summary, a
partition subset) that refuse iteration, so every run with a pool or a partition fails before its first step
("Iteration is not allowed on `@record`"). And its dask task keys are ``job.step`` without the run id, so two
runs of the same job on one cluster (``--parallel``) would be taken for one task (dagster-io/dagster#21418).

``PipelineDaskExecutor`` keeps dagster-dask's cluster set-up (``DaskExecutor.build_dict``) and its worker
function (``query_on_dask_worker``, which runs the step with the run's resources and IO manager), and only
changes how a step is submitted: its arguments travel as one ``StepCall`` object (dask does not look inside it)
and its task key names the run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster._core.errors import raise_execution_interrupts
from dagster._core.events import DagsterEvent
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._utils import iterate_with_context
from dagster_dask.executor import DaskExecutor, get_dask_resource_requirements, query_on_dask_worker


@dataclass(frozen=True)
class StepCall:
    """Everything a worker needs to run one step, as a single object dask passes along without parsing."""

    recon_job: Any
    dagster_run: Any
    run_config: Any
    step_keys: list[str]
    instance_ref: Any
    known_state: Any


def run_step_on_worker(dependencies: Sequence[Any], call: StepCall) -> Sequence[DagsterEvent]:
    """On a Dask worker: run the step (``dependencies`` only orders it after the steps it reads from)."""
    return query_on_dask_worker(dependencies, call.recon_job, call.dagster_run, call.run_config, call.step_keys,
                                call.instance_ref, call.known_state)


class PipelineDaskExecutor(DaskExecutor):
    """dagster-dask's ``DaskExecutor`` on an existing scheduler (``address``) or a ``LocalCluster`` per run."""

    def execute(self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan) -> Iterator[DagsterEvent]:
        import dask.distributed

        if not plan_context.instance.is_persistent:
            raise dg.DagsterInvariantViolationError("executor: dask needs a persistent Dagster instance (DAGSTER_HOME)")
        run = plan_context.dagster_run
        cluster = None
        if self.cluster_type == "existing":
            target = self.cluster_configuration["address"]
        else:
            target = cluster = dask.distributed.LocalCluster(**self.build_dict(plan_context.job_name))
        try:
            with dask.distributed.Client(target) as client:
                futures: dict[str, Any] = {}
                for level in execution_plan.get_steps_to_execute_by_level():
                    for step in level:
                        dependencies = [futures[key] for step_input in step.step_inputs
                                        for key in step_input.dependency_keys]
                        call = StepCall(plan_context.reconstructable_job, run, plan_context.run_config, [step.key],
                                        plan_context.instance.get_ref(), execution_plan.known_state)
                        futures[step.key] = client.submit(
                            run_step_on_worker, dependencies, call, key=f"{plan_context.job_name}.{step.key}.{run.run_id}",
                            resources=get_dask_resource_requirements(step.tags), pure=False)
                completed = dask.distributed.as_completed(list(futures.values()), with_results=True)
                for _future, events in iterate_with_context(raise_execution_interrupts, completed):
                    yield from events
        finally:
            if cluster is not None:
                cluster.close()


@dg.executor(name="dask", requirements=dg.multiple_process_executor_requirements(),
             config_schema={"address": dg.Field(str, is_required=False,
                                                description="a running Dask scheduler, e.g. tcp://10.0.0.5:8786"),
                            "n_workers": dg.Field(int, default_value=2,
                                                  description="worker processes of the LocalCluster started per run "
                                                  "when no address is given")})
def pipeline_dask_executor(init_context) -> PipelineDaskExecutor:
    config = init_context.executor_config
    if config.get("address"):
        return PipelineDaskExecutor("existing", {"address": config["address"]})
    return PipelineDaskExecutor("local", {"n_workers": config["n_workers"], "processes": True,
                                          "dashboard_address": None})
