"""Turning a judge's reply into a category of the taxonomy, and several replies into one vote.

Replies come as a JSON object (structured output), as JSON cut short by the token limit, or as free text with
`category: <name>` on the last line. Names are matched leniently (case, spaces, markdown); a reply whose category
is still not in the taxonomy is recorded as the fallback category and flagged, keeping what the judge said.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass

from failure_categorization.taxonomy import Taxonomy

_JSON_CATEGORY = re.compile(r'"category"\s*:\s*"(?P<value>[^"]*)"')
_JSON_DESCRIPTION = re.compile(r'"description"\s*:\s*"(?P<value>(?:[^"\\]|\\.)*)')
_LAST_LINE = re.compile(r"^[\W_]*category[*_\s]*[:=][*_\s]*(?P<value>.+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Answer:
    category: str
    """Always a category of the taxonomy."""
    description: str
    raw_category: str | None
    """What the judge named, before matching; None when no category could be found in the reply."""
    flagged: bool
    """The reply's category was not in the taxonomy (so `category` is the fallback)."""


@dataclass(frozen=True)
class Vote:
    category: str
    description: str
    agreement: float
    """Share of the answers that chose `category`."""
    votes: dict[str, int]
    flagged: bool
    """At least one answer was outside the taxonomy."""


def normalise_name(name: str) -> str:
    """`**Wrong Solution**.` → `wrong_solution`."""
    cleaned = name.strip().strip("`*'\"., ").lower()
    return re.sub(r"[\s\-]+", "_", cleaned)


def _from_json(text: str) -> tuple[str | None, str] | None:
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        try:
            data = json.loads(text[start : end + 1])
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and ("category" in data or "description" in data):
            category = data.get("category")
            return (str(category) if category is not None else None), str(data.get("description") or "")
    category = _JSON_CATEGORY.search(text)
    description = _JSON_DESCRIPTION.search(text)
    if category is None and description is None:
        return None
    description_text = ""
    if description is not None:
        try:
            description_text = json.loads(f'"{description["value"]}"')
        except json.JSONDecodeError:
            description_text = description["value"]
    return (category["value"] if category else None), description_text


def _from_last_line(text: str) -> tuple[str | None, str]:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if lines:
        match = _LAST_LINE.match(lines[-1].strip())
        if match:
            return match["value"], "\n".join(lines[:-1]).strip()
    return None, text.strip()


def parse_answer(text: str, taxonomy: Taxonomy) -> Answer:
    parsed = _from_json(text) or _from_last_line(text)
    raw_category, description = parsed
    if raw_category is not None and normalise_name(raw_category) in taxonomy.categories:
        return Answer(normalise_name(raw_category), description, raw_category, flagged=False)
    return Answer(taxonomy.fallback_category, description, raw_category, flagged=True)


def majority_vote(answers: list[Answer]) -> Vote:
    """The most chosen category; a tie goes to the category the earliest answer chose."""
    if not answers:
        raise ValueError("majority_vote needs at least one answer")
    counts = Counter(answer.category for answer in answers)
    best = max(counts.values())
    winner = next(answer for answer in answers if counts[answer.category] == best)
    return Vote(
        category=winner.category,
        description=winner.description,
        agreement=best / len(answers),
        votes=dict(counts),
        flagged=any(answer.flagged for answer in answers),
    )
