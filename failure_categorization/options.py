"""The options of `categorize`: one pydantic model, read from the command line, `--config` YAML files and dotted keys."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from failure_categorization.taxonomy import DEFAULT_TAXONOMY


class CategorizeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_dir: Path
    """Run directory with <traj_id>/<traj_id>.traj files."""
    eval_dir: Path | None = None
    """Eval directory with <traj_id>/report.json (SWE-smith format)."""
    instances: Path | None = None
    """Instance file (JSON/JSONL): judge only its instances, and take repository names and problem statements from it."""
    filter: str | None = None
    """Regular expression searched in traj ids."""
    limit: PositiveInt | None = None
    """Judge at most this many trajectories of each exit status."""
    output_dir: Path | None = None
    """Where results go; default `<run_dir>/failure_categorization`."""
    taxonomy: Path = DEFAULT_TAXONOMY
    """Taxonomy YAML."""
    model: str | None = None
    """litellm model name; default: the local expert server."""
    api_base: str | None = None
    """OpenAI-compatible base URL for `model` (e.g. a vLLM server)."""
    api_key_env: str | None = None
    """Name of the environment variable holding the API key (the key itself is never an option)."""
    samples: PositiveInt = 1
    """Answers per trajectory, majority-voted."""
    temperature: float | None = None
    """Default 0 for one sample, 0.7 for several."""
    max_tokens: PositiveInt = 400
    """Answer length limit."""
    no_structured_output: bool = False
    """Never send a JSON schema; ask for the category on the last line instead."""
    last_steps: PositiveInt = 5
    """Actions/observations shown to the judge."""
    max_problem_chars: PositiveInt = 3000
    max_action_chars: PositiveInt = 800
    max_observation_chars: PositiveInt = 1500
    max_tools_chars: PositiveInt = 2000
    num_workers: PositiveInt | None = None
    """Parallel judge requests; default 1 for the local server, 4 otherwise."""
    timeout: float = Field(default=600.0, gt=0)
    """Seconds per judge request (a small model on a busy CPU is slow)."""
    retries: int = Field(default=2, ge=0)
    """Retries per request, with backoff."""
    max_repositories: PositiveInt = 30
    """Columns of the repository heatmap."""
    dry_run: bool = False
    """Print the prompts that would be sent, and stop."""
