"""The options of an evaluation run: one pydantic model, read from the command line, YAML files and dotted keys."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sweagent import REPO_ROOT

DEFAULT_INSTANCES = REPO_ROOT / "config" / "demo" / "instances.json"
EVAL_SUBDIR = "eval"
"""The default eval dir is `<RUN_DIR>/eval`: results travel with the run (no .traj or .pred lives there)."""
Backend = Literal["local", "docker"]


class EvalOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_dir: Path
    """Run directory (`<traj_id>/<traj_id>.pred|.traj`, preds.json)."""
    instances: Path = DEFAULT_INSTANCES
    """SWE-smith instances, JSON or JSONL."""
    backend: Backend = "local"
    """local: the bubblewrap sandbox; docker: SWE-smith's `swesmith.harness.eval` on the instances' images."""
    num_workers: int = Field(default=1, ge=1)
    """Predictions graded in parallel."""
    eval_dir: Path | None = None
    """Where reports go; default `<run_dir>/eval`."""
    timeout: float | None = Field(default=None, gt=0)
    """Local backend: seconds before a test run is killed; default the repository profile's."""
    run_id: str | None = None
    """Docker backend: SWE-smith's run id; default `oec.<run dir name>`."""
