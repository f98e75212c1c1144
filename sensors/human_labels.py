"""A sensor that rebuilds the pairs of the batches whose comparisons got new human labels.

People label (``pref-pipeline review import`` / ``pull``) into ``human_labels`` at any time; the pairs step of a
batch applies the labels stored when it runs and records their digest (``human_pairs.labels_digest``) on the
batch's ``comparisons`` materialization. At each tick the sensor computes the same digest per batch from the
stored labels and comparisons (read through the ``home`` resource) and requests the ``rebuild_from_judgments`` job (the pairs
step and what is made from it: no LLM call) for each batch whose digest differs from the one its pairs were made
with. The cursor keeps the digest last requested per batch, so a run still pending is not requested twice; the
run key names the digest, so labels that change back and forth are applied each time. Off by default.
"""

import json

import dagster as dg

from assets.jobs import rebuild_job
from assets.partitions import PROMPT_BATCHES
from assets.resources import PipelineHome
from pref_pipeline import store
from pref_pipeline.human_pairs import LABELS_DIGEST, batch_label_digests

COMPARISONS = dg.AssetKey("comparisons")


def applied_digest(instance: dg.DagsterInstance, batch: str) -> str | None:
    """The digest of the labels the batch's latest pairs step applied ("" none; None: never run)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=COMPARISONS, asset_partitions=[batch]), limit=1).records
    if not records:
        return None
    value = records[0].asset_materialization.metadata.get(LABELS_DIGEST)
    return getattr(value, "value", value) or ""


def build_human_labels_sensor() -> dg.SensorDefinition:
    @dg.sensor(
        name="human_labels_sensor",
        job=rebuild_job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Rebuilds the pairs (and below) of every batch whose comparisons got new human labels.",
    )
    def human_labels_sensor(context: dg.SensorEvaluationContext, home: PipelineHome):
        paths = home.paths()
        digests = batch_label_digests(store.read_table(paths, store.HUMAN_LABELS_TABLE),
                                      store.read_table(paths, "comparisons"))
        requested: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        known = set(context.instance.get_dynamic_partitions(PROMPT_BATCHES.name))
        run_requests, pending = [], []
        for batch, digest in digests.items():
            if batch not in known or applied_digest(context.instance, batch) == digest:
                continue  # its pairs were made with these labels already
            if requested.get(batch) == digest:
                pending.append(batch)
                continue
            requested[batch] = digest
            run_requests.append(dg.RunRequest(partition_key=batch, run_key=f"relabel:{batch}:{digest}",
                                              tags={"pref_pipeline/human_labels_digest": digest}))
        cursor = json.dumps(requested, sort_keys=True)
        if not run_requests:
            reason = (f"rebuilding of {len(pending)} batch(es) with new labels already requested" if pending
                      else f"the pairs of every batch have the stored human labels ({len(digests)} labelled batch(es))")
            return dg.SensorResult(skip_reason=reason, cursor=cursor)
        context.log.info(f"new human labels: rebuilding the pairs of {len(run_requests)} batch(es)")
        return dg.SensorResult(run_requests=run_requests, cursor=cursor)

    return human_labels_sensor
