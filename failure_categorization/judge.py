"""The LLM judge: any litellm model, structured output where the server takes it, retries, votes, accounting.

Every request goes through the agent's own model class (`sweagent.agent.models.LiteLLMModel`): its retries with
backoff on transient errors, its token and cost accounting, its handling of API keys (masked in every output).
Structured output is a JSON schema whose `category` is an enum of the taxonomy, so servers that enforce schemas
(llama.cpp, OpenAI) can only answer inside it. A server that rejects `response_format` is asked once more without
it, and from then on the judge asks for `category: <name>` on the last line. A judge server that refuses
connections is remembered: later trajectories fail at once instead of each waiting through its retries.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import asdict
from typing import Any

import openai
from pydantic import BaseModel, ConfigDict, Field

from sweagent.agent.models import LiteLLMModel, LiteLLMModelConfig, ModelLimitError, ModelUnavailableError, RetryConfig

from failure_categorization.answers import Answer, majority_vote, parse_answer
from failure_categorization.prompt import PROMPT_VERSION, JudgePrompt, PromptLimits
from failure_categorization.taxonomy import ANALYSIS_ERROR, Taxonomy
from failure_categorization.verdicts import Judgement, SampleRecord, Usage

logging.getLogger("LiteLLM").setLevel(logging.WARNING)  # one INFO line per request otherwise

# Errors that a retry cannot fix: wrong key, unknown model, a prompt the server refuses.
_PERMANENT_ERRORS = (
    openai.AuthenticationError,
    openai.PermissionDeniedError,
    openai.NotFoundError,
    openai.BadRequestError,
    openai.UnprocessableEntityError,
)


class JudgeSettings(BaseModel):
    """Everything that changes what the judge answers; verdicts made with other settings are asked again."""

    model_config = ConfigDict(extra="forbid")

    model: str
    """litellm model name, e.g. `openai/expert` (with api_base), `anthropic/claude-sonnet-4-20250514`, `gpt-4o`."""
    temperature: float = 0.0
    max_tokens: int = 400
    samples: int = Field(default=1, ge=1)
    """K answers per trajectory; the category is their majority vote."""
    structured_output: bool = True
    """Send a JSON schema as `response_format` (dropped automatically if the server rejects it)."""
    limits: PromptLimits = Field(default_factory=PromptLimits)

    def fingerprint(self, taxonomy: Taxonomy) -> str:
        payload = json.dumps([self.model_dump(), taxonomy.fingerprint(), PROMPT_VERSION], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


class JudgeCallError(Exception):
    """A judge request that failed for good (after retries, or with an error a retry cannot fix)."""

    def __init__(self, message: str, calls: int, unreachable: bool = False) -> None:
        super().__init__(message)
        self.calls = calls
        self.unreachable = unreachable


def _cannot_connect(exc: BaseException) -> bool:
    """litellm reports a refused connection as a 500; the original connection error is in the cause chain."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, openai.APIConnectionError) and not isinstance(seen, openai.APITimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]


class Judge:
    """Thread-safe: the runner calls `judge` from several threads at once."""

    def __init__(
        self,
        settings: JudgeSettings,
        taxonomy: Taxonomy,
        api_base: str | None = None,
        api_key: str | None = None,
        timeout: float = 600.0,
        retries: int = 2,
        retry_wait: float = 1.0,
    ) -> None:
        self.settings = settings
        self.taxonomy = taxonomy
        self.fingerprint = settings.fingerprint(taxonomy)
        self._api_base = api_base
        self._api_key = api_key  # kept in memory only, never written or logged
        self._timeout = timeout
        self._retries = retries
        self._retry_wait = retry_wait
        self._structured = settings.structured_output
        self._unreachable: str | None = None
        self._lock = threading.Lock()
        self.structured_fallback: str | None = None
        """Why the server's structured output was given up on, if it was."""
        self.usage = Usage()
        """Totals over every call this judge made (the runner's resume test counts `usage.calls`)."""

    @property
    def unreachable(self) -> str | None:
        """Why the judge server is considered down, once a trajectory failed to connect after all retries."""
        return self._unreachable

    def description_chars(self) -> int:
        """A description short enough that the category after it still fits in max_tokens (2+ chars a token,
        40 tokens for the JSON around it); otherwise a long-winded judge is cut off before it names a category."""
        return max(60, 2 * (self.settings.max_tokens - 40))

    def response_schema(self) -> dict[str, Any]:
        return {
            "type": "json_schema",
            "json_schema": {
                "name": "failure_verdict",
                "schema": {
                    "type": "object",
                    "properties": {
                        "description": {"type": "string", "maxLength": self.description_chars()},
                        "category": {"type": "string", "enum": self.taxonomy.names},
                    },
                    "required": ["description", "category"],
                    "additionalProperties": False,
                },
            },
        }

    def judge(self, prompt: JudgePrompt) -> Judgement:
        """Ask K times and vote; analysis_error only when no answer at all came back."""
        answers: list[Answer] = []
        records: list[SampleRecord] = []
        usage = Usage()
        error: str | None = None
        for _ in range(self.settings.samples):
            try:
                text, call_usage = self._complete(prompt)
            except JudgeCallError as exc:
                error = str(exc)
                usage = usage + Usage(calls=exc.calls)
                records.append(SampleRecord(category=ANALYSIS_ERROR, error=error))
                if exc.unreachable:
                    break
                continue
            usage = usage + call_usage
            answer = parse_answer(text, self.taxonomy)
            answers.append(answer)
            records.append(SampleRecord(**asdict(answer)))
        with self._lock:
            self.usage = self.usage + usage
        if not answers:
            return Judgement(category=ANALYSIS_ERROR, samples=records, usage=usage, error=error)
        vote = majority_vote(answers)
        return Judgement(
            category=vote.category,
            description=vote.description,
            flagged=vote.flagged,
            agreement=vote.agreement,
            samples=records,
            usage=usage,
        )

    def _model(self, structured: bool) -> LiteLLMModel:
        """A fresh model per request (its stats are that request's usage), asking for the schema when `structured`."""
        settings = self.settings
        return LiteLLMModel(LiteLLMModelConfig(
            name=settings.model, api_base=self._api_base, api_key=self._api_key, temperature=settings.temperature,
            max_output_tokens=settings.max_tokens, timeout=self._timeout, per_instance_cost_limit=0,
            retry=RetryConfig(retries=self._retries, min_wait=self._retry_wait, max_wait=self._retry_wait * 2 ** self._retries),
            completion_kwargs={"response_format": self.response_schema()} if structured else {},
        ))

    def _complete(self, prompt: JudgePrompt) -> tuple[str, Usage]:
        """One answer; the model class retries transient failures with exponential backoff."""
        if self._unreachable is not None:
            raise JudgeCallError(f"judge server unreachable ({self._unreachable})", calls=0, unreachable=True)
        structured = self._structured
        rejected: BaseException | None = None
        calls = 0
        while True:
            model = self._model(structured)
            calls += 1
            try:
                output = model.query(prompt.messages(structured))
            except _PERMANENT_ERRORS as exc:
                if structured:
                    # Maybe the server does not take response_format: ask once more without it.
                    structured, rejected = False, exc
                    continue
                raise JudgeCallError(_short(rejected or exc), calls=calls) from None
            except ModelUnavailableError as exc:  # transient errors, retried by the model until it gave up
                calls += self._retries
                unreachable = _cannot_connect(exc)
                if unreachable:
                    with self._lock:
                        self._unreachable = _short(exc.__context__ or exc)
                raise JudgeCallError(f"{exc} (gave up after {calls} attempts)", calls=calls, unreachable=unreachable) from None
            except ModelLimitError as exc:  # the prompt does not fit the judge's context window
                raise JudgeCallError(str(exc), calls=calls) from None
            if rejected is not None:
                self._stop_structured(rejected)
            stats = model.stats
            return output.content, Usage(calls=calls, prompt_tokens=stats.tokens_sent, completion_tokens=stats.tokens_received,
                                         cost=stats.instance_cost)

    def _stop_structured(self, reason: BaseException) -> None:
        with self._lock:
            if self._structured:
                self._structured = False
                self.structured_fallback = _short(reason)
