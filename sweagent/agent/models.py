"""Models: anything with `query(messages, tools) -> ModelOutput` and per-instance `stats`.

`LiteLLMModel` talks to any litellm provider (vLLM and llama.cpp servers through `openai/...` + `api_base`,
Claude, GPT); `ReplayModel` returns recorded outputs, for tests and for replaying trajectories.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from sweagent.utils.errors import describe_validation_error
from sweagent.utils.secrets import register_secret

logger = logging.getLogger(__name__)


class ModelOutput(BaseModel):
    """One model answer: text plus native tool calls (OpenAI format) when the model made any."""

    content: str = ""
    tool_calls: list[dict[str, Any]] | None = None


class InstanceStats(BaseModel):
    instance_cost: float = 0.0
    tokens_sent: int = 0
    tokens_received: int = 0
    api_calls: int = 0

    def __add__(self, other: InstanceStats) -> InstanceStats:
        return InstanceStats(**{k: getattr(self, k) + getattr(other, k) for k in type(self).model_fields})


class ModelLimitError(RuntimeError):
    """Base of the errors that end a run because a model budget is spent (mapped to an exit status)."""

    exit_status = "exit_error"


class CostLimitExceededError(ModelLimitError):
    exit_status = "exit_cost"


class CallLimitExceededError(ModelLimitError):
    exit_status = "exit_cost"


class ContextWindowExceededError(ModelLimitError):
    exit_status = "exit_context"


class ModelUnavailableError(ModelLimitError):
    """The model server kept failing after every retry."""

    exit_status = "exit_error"


class ReplayExhaustedError(ModelLimitError):
    exit_status = "exit_error"


class Model(Protocol):
    """The agent's view of a model."""

    name: str
    stats: InstanceStats

    def query(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> ModelOutput: ...


class RetryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    retries: int = 5
    """Attempts after the first one for transient errors (connection, 429, 5xx, timeouts)."""
    min_wait: float = 1.0
    """Seconds before the first retry; doubles each time."""
    max_wait: float = 30.0
    """Upper bound of the wait between retries."""


class LiteLLMModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["litellm"] = "litellm"
    """Any litellm provider: `claude-3-7-sonnet-20250219`, `gpt-4o-mini`, `hosted_vllm/<name>` or `openai/<name>`."""
    name: str
    """litellm model name."""
    api_base: str | None = None
    """Server URL for vLLM/llama.cpp/OpenAI-compatible servers, e.g. http://127.0.0.1:8000/v1."""
    api_key: SecretStr | None = None
    """API key; prefer `$ENV_VAR` references in YAML. Never written to trajectories or dumps."""
    temperature: float = 0.0
    """Sampling temperature."""
    top_p: float | None = None
    """Nucleus sampling; unset leaves the provider default."""
    max_output_tokens: int | None = None
    """Maximum tokens per answer."""
    per_instance_cost_limit: float = 3.0
    """Dollars this model may spend on one instance (0 = no limit)."""
    per_instance_call_limit: int = 0
    """Calls this model may make on one instance (0 = no limit)."""
    total_cost_limit: float = 0.0
    """Dollars this model may spend across all instances of this process (0 = no limit); SWE-agent's key."""
    delay: float = 0.0
    """Seconds to wait before each request (rate limiting); SWE-agent's key."""
    max_input_tokens: int | None = None
    """Context window; when unset litellm's model map is asked, and unknown models are not checked."""
    input_cost_per_token: float | None = None
    """Price override for models litellm does not know (local servers: 0)."""
    output_cost_per_token: float | None = None
    """Price override for models litellm does not know (local servers: 0)."""
    timeout: float = 600
    """Seconds one request may take."""
    retry: RetryConfig = Field(default_factory=RetryConfig)
    """Retries with exponential backoff on transient errors."""
    completion_kwargs: dict[str, Any] = {}
    """Extra arguments passed to litellm.completion (e.g. `{"stop": ["</function>"]}`)."""
    tool_call_prefill: str | None = None
    """When tools are offered, the answer is made to start with this text, sent as a last assistant message (a prefill,
    which llama.cpp's OpenAI and Anthropic endpoints continue). `"<tool_call>\n"` for Qwen2.5 behind llama.cpp: its
    grammar for `tool_choice: required` still lets text come before the call, and a small model writes a fenced JSON
    block there and never gets to the call; started inside the call, the grammar holds the model to a valid call, which
    the server returns as `tool_calls`. Never stored in the history."""


class ReplayModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["replay"] = "replay"
    """Outputs come from a file instead of a model."""
    replay_path: Path
    """JSON/JSONL/YAML file: a list of outputs, or a mapping instance_id -> list, or a `.traj` to replay."""
    name: str = "replay"
    """Name recorded in the trajectory."""


def _resolve_secret(secret: SecretStr | None) -> str | None:
    """`$VAR` in YAML names an environment variable, read only at call time; the key is masked in every output."""
    if secret is None:
        return None
    value = secret.get_secret_value()
    resolved = os.environ.get(value[1:], "") if value.startswith("$") else value
    register_secret(resolved)
    return resolved


_PROCESS_COST: dict[str, float] = {}
"""Dollars spent per model name by this process, for `total_cost_limit` (rollouts run in threads)."""
_PROCESS_COST_LOCK = threading.Lock()


class LiteLLMModel:
    def __init__(self, config: LiteLLMModelConfig):
        self.config = config
        self.name = config.name
        self.stats = InstanceStats()
        self._max_input_tokens = config.max_input_tokens or self._lookup_context_window()

    def _lookup_context_window(self) -> int | None:
        import litellm

        try:
            return litellm.get_model_info(self.config.name).get("max_input_tokens")
        except Exception:
            return None

    def reset_stats(self) -> None:
        self.stats = InstanceStats()

    def _check_limits(self) -> None:
        cfg = self.config
        if cfg.total_cost_limit and _PROCESS_COST.get(self.name, 0.0) >= cfg.total_cost_limit:
            raise CostLimitExceededError(f"{self.name}: total cost limit ${cfg.total_cost_limit} of this run reached")
        if cfg.per_instance_cost_limit and self.stats.instance_cost >= cfg.per_instance_cost_limit:
            raise CostLimitExceededError(f"{self.name}: cost limit ${cfg.per_instance_cost_limit} reached")
        if cfg.per_instance_call_limit and self.stats.api_calls >= cfg.per_instance_call_limit:
            raise CallLimitExceededError(f"{self.name}: call limit {cfg.per_instance_call_limit} reached")

    def _check_context(self, messages: list[dict[str, Any]]) -> int:
        import litellm

        tokens = litellm.token_counter(model=self.config.name, messages=messages)
        if self._max_input_tokens and tokens > self._max_input_tokens:
            raise ContextWindowExceededError(f"{self.name}: {tokens} input tokens exceed the {self._max_input_tokens}-token window")
        return tokens

    def _cost(self, response: Any, prompt_tokens: int, completion_tokens: int) -> float:
        import litellm

        cfg = self.config
        if cfg.input_cost_per_token is not None or cfg.output_cost_per_token is not None:
            return prompt_tokens * (cfg.input_cost_per_token or 0) + completion_tokens * (cfg.output_cost_per_token or 0)
        try:
            return float(litellm.completion_cost(completion_response=response))
        except Exception:
            return 0.0

    def _completion(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> Any:
        import litellm

        litellm.suppress_debug_info = True  # its "Give Feedback / Get Help" banner on stdout; the error is raised
        cfg = self.config
        kwargs: dict[str, Any] = {
            "model": cfg.name,
            "messages": messages,
            "temperature": cfg.temperature,
            "timeout": cfg.timeout,
            "num_retries": 0,
            **cfg.completion_kwargs,
        }
        if tools:
            kwargs["tools"] = tools
            if cfg.tool_call_prefill:
                kwargs["messages"] = [*messages, {"role": "assistant", "content": cfg.tool_call_prefill}]
        for key, value in [("api_base", cfg.api_base), ("api_key", _resolve_secret(cfg.api_key)),
                           ("top_p", cfg.top_p), ("max_tokens", cfg.max_output_tokens)]:
            if value is not None:
                kwargs[key] = value
        transient = (litellm.exceptions.APIConnectionError, litellm.exceptions.RateLimitError,
                     litellm.exceptions.ServiceUnavailableError, litellm.exceptions.InternalServerError,
                     litellm.exceptions.Timeout, litellm.exceptions.BadGatewayError)
        wait = self.config.retry.min_wait
        for attempt in range(self.config.retry.retries + 1):
            try:
                return litellm.completion(**kwargs)
            except litellm.exceptions.ContextWindowExceededError as exc:
                raise ContextWindowExceededError(f"{self.name}: {exc}") from None
            except transient as exc:
                if attempt == self.config.retry.retries:
                    raise ModelUnavailableError(f"{self.name}: still failing after {attempt + 1} attempts: {type(exc).__name__}: {str(exc)[:300]}") from None
                logger.warning("%s: %s, retrying in %.1fs", self.name, type(exc).__name__, wait)
                time.sleep(wait)
                wait = min(wait * 2, self.config.retry.max_wait)
        raise AssertionError("unreachable")

    def query(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> ModelOutput:
        self._check_limits()
        counted_prompt_tokens = self._check_context(messages)
        if self.config.delay:
            time.sleep(self.config.delay)
        response = self._completion(messages, tools)
        choice = response.choices[0].message
        usage = getattr(response, "usage", None)
        prompt_tokens = getattr(usage, "prompt_tokens", None) or counted_prompt_tokens
        completion_tokens = getattr(usage, "completion_tokens", None) or 0
        self.stats.api_calls += 1
        self.stats.tokens_sent += prompt_tokens
        self.stats.tokens_received += completion_tokens
        cost = self._cost(response, prompt_tokens, completion_tokens)
        self.stats.instance_cost += cost
        with _PROCESS_COST_LOCK:
            _PROCESS_COST[self.name] = _PROCESS_COST.get(self.name, 0.0) + cost
        tool_calls = None
        if getattr(choice, "tool_calls", None):
            tool_calls = [
                {"id": call.id, "type": "function",
                 "function": {"name": call.function.name, "arguments": call.function.arguments}}
                for call in choice.tool_calls
            ]
        return ModelOutput(content=choice.content or "", tool_calls=tool_calls)


class ReplayModel:
    """Returns recorded outputs in order; running out ends the run with exit_error."""

    def __init__(self, config: ReplayModelConfig, instance_id: str | None = None):
        self.config = config
        self.name = config.name
        self.stats = InstanceStats()
        self._outputs = _load_replay_outputs(config.replay_path, instance_id)
        self._next = 0

    def query(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> ModelOutput:
        if self._next >= len(self._outputs):
            raise ReplayExhaustedError(f"{self.config.replay_path}: no recorded output left after {self._next} queries")
        output = self._outputs[self._next]
        self._next += 1
        self.stats.api_calls += 1
        return output


def _load_replay_outputs(path: Path, instance_id: str | None) -> list[ModelOutput]:
    import yaml

    from sweagent.utils.yaml_text import load_yaml

    if not path.is_file():
        raise FileNotFoundError(f"{path}: replay file does not exist (key 'agent.model.replay_path')")
    if path.suffix == ".traj":
        from sweagent.trajectory import load_trajectory

        history = load_trajectory(path).assistant_messages()
        return [ModelOutput(content=m.text, tool_calls=getattr(m, "tool_calls", None)) for m in history]
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            data: Any = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            data = load_yaml(text)
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = f"line {mark.line + 1}: {exc.problem}" if mark is not None else " ".join(str(exc).split())[:200]  # type: ignore[attr-defined]
        raise ValueError(f"{path}: not a valid replay file ({problem}) (key 'agent.model.replay_path')") from None
    if isinstance(data, dict):
        if instance_id is None or instance_id not in data:
            raise ValueError(f"{path}: no outputs recorded for instance '{instance_id}' (expected a key per instance id)")
        data = data[instance_id]
    if not isinstance(data, list) or not all(isinstance(item, (str, dict)) for item in data):
        raise ValueError(f"{path}: expected a list of outputs (strings or {{content, tool_calls}} objects)")
    try:
        return [ModelOutput(content=item) if isinstance(item, str) else ModelOutput.model_validate(item) for item in data]
    except ValidationError as exc:
        raise ValueError(f"{path}: {describe_validation_error(exc)}") from None
