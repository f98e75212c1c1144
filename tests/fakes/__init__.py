"""Fake LLMs for tests: an OpenAI + Anthropic compatible HTTP server (``llm_server``) for the tests of the SDK
path, and an in-process provider (``in_process``) for pipeline tests; both answer through ``answers``."""

from tests.fakes.answers import (
    JUDGE_PROSE, GenInfo, JudgeInfo, ScoreInfo, default_generate, default_judge, default_score,
)
from tests.fakes.llm_server import FakeLLMServer

__all__ = ["JUDGE_PROSE", "FakeLLMServer", "GenInfo", "JudgeInfo", "ScoreInfo", "default_generate", "default_judge",
           "default_score"]
