"""A sensor that notices new or changed prompt batches and runs the pipeline for each.

It watches every batch the configuration names (sources, every file in ``prompt_folder``, or the
built-in set), adds a partition for a new one and requests a run whenever a batch's content hash
differs from the one its last run was made from. The cursor keeps, per batch, the content last
requested and a counter: the run key names the request's number, so content that changes back
(A -> B -> A) is run again instead of being dropped as a repeated key.

With an empty cursor (a sensor just turned on), a batch whose stored ``prompts`` were made from the
same content (the ``batch_fingerprint`` on its latest materialization) is taken as done, not re-run.
A configured source whose file is missing makes no partition: the tick says which file is missing.
"""

import json
from collections.abc import Callable

import dagster as dg

from assets.jobs import pipeline_job
from assets.partitions import PROMPT_BATCHES
from pref_pipeline.batches import batch_fingerprint, discover_batches, missing_sources
from pref_pipeline.config import PipelineConfig

PROMPTS = dg.AssetKey("prompts")


def stored_fingerprint(instance: dg.DagsterInstance, batch: str) -> str | None:
    """The content hash the batch's latest ``prompts`` were made from, or None if never run."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=PROMPTS, asset_partitions=[batch]), limit=1).records
    if not records:
        return None
    value = records[0].asset_materialization.metadata.get("batch_fingerprint")
    return getattr(value, "value", value)


def build_prompt_batches_sensor(load_config: Callable[[], PipelineConfig]) -> dg.SensorDefinition:
    @dg.sensor(
        name="prompt_batches_sensor",
        job=pipeline_job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Adds a partition and a run for each new or changed prompt file (prompt_folder and sources).",
    )
    def prompt_batches_sensor(context: dg.SensorEvaluationContext):
        config = load_config()  # read at every tick: a new prompt_folder or source needs no reload
        seen: dict[str, dict] = json.loads(context.cursor) if context.cursor else {}
        known = set(context.instance.get_dynamic_partitions(PROMPT_BATCHES.name))
        new_partitions, run_requests, missing = [], [], []
        for batch, sources in discover_batches(config).items():
            if absent := missing_sources(sources):
                missing += [str(path) for path in absent]
                continue
            fingerprint = batch_fingerprint(sources)
            state = seen.get(batch)
            if state is None and batch in known and stored_fingerprint(context.instance, batch) == fingerprint:
                seen[batch] = {"fingerprint": fingerprint, "requests": 0}  # already done before the sensor ran
                continue
            if batch not in known:
                new_partitions.append(batch)
            if state is None or state["fingerprint"] != fingerprint:
                count = (state or {}).get("requests", 0) + 1
                seen[batch] = {"fingerprint": fingerprint, "requests": count}
                run_requests.append(dg.RunRequest(
                    partition_key=batch,
                    run_key=f"{batch}:{count}:{fingerprint}",
                    tags={"pref_pipeline/batch": batch, "pref_pipeline/batch_fingerprint": fingerprint},
                ))
        if missing:
            context.log.warning(f"prompt file(s) missing, no partition made: {', '.join(missing)}")
        cursor = json.dumps(seen, sort_keys=True)
        if not run_requests and not new_partitions:
            reason = f"no new or changed prompt batch among {len(seen)}"
            return dg.SensorResult(skip_reason=reason + (f"; missing: {', '.join(missing)}" if missing else ""),
                                   cursor=cursor)
        return dg.SensorResult(
            run_requests=run_requests,
            dynamic_partitions_requests=[PROMPT_BATCHES.build_add_request(new_partitions)] if new_partitions else [],
            cursor=cursor,
        )

    return prompt_batches_sensor
