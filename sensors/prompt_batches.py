"""A sensor that notices new or changed prompt batches and runs the pipeline for each.

It watches every batch the configuration names (sources, every file in ``prompt_folder``, or the
built-in set), adds a partition for a new one and requests a run whenever a batch's content hash
changes. The run key is the batch and its hash, so one content is never run twice.
"""

import json
from collections.abc import Callable
from importlib import resources

import dagster as dg

from assets.jobs import pipeline_job
from assets.partitions import PROMPT_BATCHES
from pref_pipeline.batches import discover_batches, file_fingerprint
from pref_pipeline.config import PipelineConfig, PromptSource

BUILTIN_FILE = resources.files("pref_pipeline").joinpath("data/default_prompts.jsonl")


def batch_fingerprint(sources: list[PromptSource]) -> str:
    if not sources:
        return file_fingerprint(BUILTIN_FILE)
    return "+".join(file_fingerprint(source.path) for source in sources if source.path.exists())


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
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        known = set(context.instance.get_dynamic_partitions(PROMPT_BATCHES.name))
        new_partitions, run_requests, current = [], [], {}
        for batch, sources in discover_batches(config).items():
            fingerprint = batch_fingerprint(sources)
            current[batch] = fingerprint
            if batch not in known:
                new_partitions.append(batch)
            if seen.get(batch) != fingerprint:
                run_requests.append(dg.RunRequest(
                    partition_key=batch,
                    run_key=f"{batch}:{fingerprint}",
                    tags={"pref_pipeline/batch": batch, "pref_pipeline/batch_fingerprint": fingerprint},
                ))
        if not run_requests and not new_partitions:
            return dg.SkipReason(f"no new or changed prompt batch among {len(current)}")
        return dg.SensorResult(
            run_requests=run_requests,
            dynamic_partitions_requests=[PROMPT_BATCHES.build_add_request(new_partitions)] if new_partitions else [],
            cursor=json.dumps({**seen, **current}, sort_keys=True),
        )

    return prompt_batches_sensor
