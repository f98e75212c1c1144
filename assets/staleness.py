"""Whether judgments and everything made from them come from the judge the configuration names now.

Dagster's own stale marking does not reach where a user looks here: it is computed per partition
only (a partitioned asset is always "fresh" in the graph, the catalog and the asset's overview), and
an asset below a changed one is marked only after that one is materialized again. So each asset
from ``judgments`` down carries the check ``judge_is_current`` (WARN severity, never blocking): it
fails, naming the batches, when a batch's latest verdicts were made by another judge fingerprint
than the configured one, or when the asset was made before its batch's latest verdicts, and says what
fixes each kind (``advice``: the ``rejudge`` job, or ``rebuild_from_judgments`` for what sits below
``judgments``; never the judge sensor where it would launch nothing). Asset checks show on the graph's
nodes, in the catalog and on each asset's page.

The check runs at the end of every run that materializes these assets, and
``judge_staleness_sensor`` (on by default; it launches nothing) evaluates it again whenever the
verdict changes: a judge edited in the YAML shows within one tick, without a run or a reload.
"""

from dataclasses import dataclass, field

import dagster as dg

from assets.jobs import REBUILD_JOB, REJUDGE_JOB, ROLLUP_JOB
from assets.partitions import PROMPT_BATCHES
from pref_pipeline.config import PipelineConfig
from pref_pipeline.judging import judge_code_version

CHECK_NAME = "judge_is_current"
JUDGMENTS = dg.AssetKey("judgments")
CODE_VERSION_TAG = "dagster/code_version"  # what Dagster records of ``judgments``' code version (the fingerprint)
SHOWN_BATCHES = 10
MATERIALIZATION = dg.DagsterEventType.ASSET_MATERIALIZATION


# Says whether a batch is published, not what the judge made; a check on it would also make the check's step wait
# on it, and a blocked batch (the asset failing) would leave every judge_is_current result of that run unmade.
NOT_CHECKED = dg.AssetSelection.assets("batch_published")


def judged_assets(assets: list) -> list[dg.AssetKey]:
    """``judgments`` and every asset downstream of it (but ``batch_published``), in the given definitions."""
    keys = (dg.AssetSelection.assets(JUDGMENTS).downstream() - NOT_CHECKED).resolve(
        [a for a in assets if isinstance(a, dg.AssetsDefinition)])
    return sorted(keys, key=lambda key: key.to_user_string())


def configured_judges(config: PipelineConfig) -> str:
    return " + ".join(spec.model for spec in config.judges)


@dataclass
class JudgeState:
    """What the instance records of each batch's latest verdicts."""

    configured: str  # the judge panel's fingerprint the configuration names now
    judged_with: dict[str, str] = field(default_factory=dict)  # batch -> fingerprint of its latest judgments
    judged_at: dict[str, int] = field(default_factory=dict)  # batch -> storage id of that materialization

    @classmethod
    def read(cls, instance: dg.DagsterInstance, configured: str) -> "JudgeState":
        batches = set(instance.get_dynamic_partitions(PROMPT_BATCHES.name))
        judged_at = {b: i for b, i in instance.get_latest_storage_id_by_partition(JUDGMENTS, MATERIALIZATION).items()
                     if b in batches}
        judged_with = {}
        for batch in sorted(judged_at):
            [record] = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=JUDGMENTS, asset_partitions=[batch]), limit=1).records
            judged_with[batch] = record.asset_materialization.tags.get(CODE_VERSION_TAG, "unknown")
        return cls(configured=configured, judged_with=judged_with, judged_at=judged_at)

    def other_judge(self) -> dict[str, str]:
        """Batches whose latest verdicts come from another judge: batch -> that judge's fingerprint."""
        return {b: f for b, f in sorted(self.judged_with.items()) if f != self.configured}


OTHER_JUDGE = "judged by"  # the batch's latest verdicts come from another judge: re-judge it
OLDER_THAN_VERDICTS = "made before the batch's latest verdicts"  # below judgments: rebuild it
OLDER_ROLLUP = "judged after this roll-up was made"  # a roll-up: rebuild it


def stale_batches(instance: dg.DagsterInstance, asset: dg.AssetKey, partitioned: bool,
                  state: JudgeState) -> dict[str, str]:
    """The batches whose ``asset`` does not reflect verdicts of the configured judge: batch -> why."""
    stale = {b: f"{OTHER_JUDGE} {f}" for b, f in state.other_judge().items()}
    if asset == JUDGMENTS or not state.judged_at:
        return stale
    if partitioned:
        made_at = instance.get_latest_storage_id_by_partition(asset, MATERIALIZATION, set(state.judged_at))
        for batch, judged in state.judged_at.items():
            if batch not in stale and batch in made_at and made_at[batch] < judged:
                stale[batch] = OLDER_THAN_VERDICTS
        return dict(sorted(stale.items()))
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=asset), limit=1).records
    if records:  # a roll-up over every batch: older than any batch's latest verdicts
        for batch, judged in state.judged_at.items():
            if batch not in stale and records[0].storage_id < judged:
                stale[batch] = OLDER_ROLLUP
    return dict(sorted(stale.items()))


def advice(asset: dg.AssetKey, stale: dict[str, str]) -> str:
    """What fixes each kind of staleness, naming the batches and the job that does it: another judge's verdicts
    need the ``rejudge`` job (what ``judge_change_sensor`` launches); an asset made before its batch's latest
    verdicts, or a roll-up older than them, needs only what sits below ``judgments`` rebuilt (the
    ``rebuild_from_judgments`` job, or materializing the stale partitions of the assets below ``judgments``)."""
    rejudge = [b for b, why in stale.items() if why.startswith(OTHER_JUDGE)]
    rebuild = [b for b, why in stale.items() if not why.startswith(OTHER_JUDGE)]
    steps = []
    if rejudge:
        steps.append(f"re-judge {_names(rejudge)}: launch the {REJUDGE_JOB} job for these partitions (turning on "
                     "judge_change_sensor does the same), after Reload definitions if the YAML changed")
    if rebuild and stale[rebuild[0]] == OLDER_ROLLUP:
        steps.append(f"rebuild what sits below judgments: launch the {REBUILD_JOB} job for {_names(rebuild)} "
                     f"(no LLM call), or the {ROLLUP_JOB} job for this roll-up alone")
    elif rebuild:
        steps.append(f"rebuild what sits below judgments: launch the {REBUILD_JOB} job for {_names(rebuild)} "
                     "(no LLM call: the verdicts are stored), or materialize these partitions of the assets below "
                     "judgments")
    text = "; ".join(steps)
    return text[:1].upper() + text[1:] + "."


def _names(batches: list[str]) -> str:
    shown = ", ".join(batches[:SHOWN_BATCHES])
    more = f" and {len(batches) - SHOWN_BATCHES} more" if len(batches) > SHOWN_BATCHES else ""
    return f"{shown}{more}"


def check_result(asset: dg.AssetKey, stale: dict[str, str], state: JudgeState, judges: str,
                 ) -> dg.AssetCheckResult:
    """Pass, or WARN naming the stale batches and what fixes them."""
    total = len(state.judged_at)
    metadata = {
        "configured_judge_fingerprint": state.configured,
        "configured_judges": judges,
        "stale_batches": len(stale),
        "judged_batches": total,
        "stale": dg.MetadataValue.json(dict(list(stale.items())[:SHOWN_BATCHES * 10])),
    }
    if not stale:
        description = (f"every judged batch ({total}) is made from verdicts of the configured judge {state.configured} "
                       f"({judges})" if total else "no batch judged yet")
        return dg.AssetCheckResult(asset_key=asset, check_name=CHECK_NAME, passed=True, description=description,
                                   metadata=metadata)
    shown = ", ".join(f"{b} ({why})" for b, why in list(stale.items())[:SHOWN_BATCHES])
    more = f" and {len(stale) - SHOWN_BATCHES} more" if len(stale) > SHOWN_BATCHES else ""
    description = (f"stale: {len(stale)} of {total} batch(es) do not reflect the configured judge {state.configured} "
                   f"({judges}): {shown}{more}. {advice(asset, stale)}")
    return dg.AssetCheckResult(asset_key=asset, check_name=CHECK_NAME, passed=False,
                               severity=dg.AssetCheckSeverity.WARN, description=description, metadata=metadata)


def evaluate(instance: dg.DagsterInstance, config: PipelineConfig, assets: dict[dg.AssetKey, bool],
             ) -> list[dg.AssetCheckResult]:
    """The check's result for each asset (``assets``: key -> whether it is partitioned)."""
    state = JudgeState.read(instance, judge_code_version(config))
    judges = configured_judges(config)
    return [check_result(key, stale_batches(instance, key, partitioned, state), state, judges)
            for key, partitioned in assets.items()]


def build_judge_current_check(config: PipelineConfig, assets: list) -> dg.AssetChecksDefinition:
    """``judge_is_current`` on ``judgments`` and every asset downstream of it."""
    keys = judged_assets(assets)
    partitioned = {key: True for key in keys}
    for definition in assets:
        if isinstance(definition, dg.AssetsDefinition):
            for key in definition.keys:
                if key in partitioned:
                    partitioned[key] = definition.partitions_def is not None
    description = ("Made from verdicts of the judge the configuration names now (its fingerprint). Warns, naming "
                   "the batches, after a judge change until they are re-judged and rebuilt.")
    specs = [dg.AssetCheckSpec(CHECK_NAME, asset=key, description=description) for key in keys]

    @dg.multi_asset_check(specs=specs, can_subset=True, name=CHECK_NAME)
    def judge_is_current(context: dg.AssetCheckExecutionContext):
        selected = {key.asset_key for key in context.selected_asset_check_keys}
        yield from evaluate(context.instance, config, {k: p for k, p in partitioned.items() if k in selected})

    return judge_is_current
