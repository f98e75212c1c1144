"""Dagster automation: the prompt-batch sensor, the judge-change sensor, the judge-staleness sensor (marks
what an earlier judge made, launches nothing), the human-label sensor (rebuilds the pairs of batches people
labelled) and the regular schedule."""

from collections.abc import Callable

from pref_pipeline.config import PipelineConfig
from sensors.human_labels import build_human_labels_sensor
from sensors.judge_change import build_judge_change_sensor
from sensors.judge_staleness import build_judge_staleness_sensor
from sensors.prompt_batches import build_prompt_batches_sensor
from sensors.schedules import build_refresh_schedule


def build_automation(config: PipelineConfig, load_config: Callable[[], PipelineConfig]):
    """(sensors, schedules); sensors re-read the configuration through ``load_config`` at every tick."""
    sensors = [build_prompt_batches_sensor(load_config), build_judge_change_sensor(load_config),
               build_judge_staleness_sensor(load_config), build_human_labels_sensor()]
    return sensors, [build_refresh_schedule(config)]


__all__ = ["build_automation"]
