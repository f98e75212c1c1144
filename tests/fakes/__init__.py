"""Fake services for tests: an in-process OpenAI + Anthropic compatible LLM server."""

from tests.fakes.llm_server import FakeLLMServer, GenInfo, JudgeInfo, default_generate, default_judge

__all__ = ["FakeLLMServer", "GenInfo", "JudgeInfo", "default_generate", "default_judge"]
