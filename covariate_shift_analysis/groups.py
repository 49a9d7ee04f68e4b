"""Which trajectories take part: list each group's rollouts, keep the instances every group has, cap rollouts.

Only instances present in every group are analysed, so all curves describe the same tasks and one bootstrap
replicate can draw the same instances for all groups. Rollouts of one instance are `<iid>__r<k>` folders (or the
same `<iid>` in several run directories of a group); a group contributes at most
`bootstrap.max_rollouts_per_instance` of them, the first ones by (run directory order, rollout number).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from covariate_shift_analysis.config import AnalysisConfig
from covariate_shift_analysis.errors import CovariateShiftError
from sweagent.trajectory import TrajectoryError, iter_trajectory_files, split_traj_id

Selection = dict[str, dict[str, list["RolloutFile"]]]
"""group → instance id → the rollout files taken for it."""


@dataclass(frozen=True)
class RolloutFile:
    instance_id: str
    traj_id: str
    path: Path


def _examples(items: Collection[str], limit: int = 3) -> str:
    shown = sorted(items)[:limit]
    return ", ".join(shown) + (", ..." if len(items) > limit else "")


def list_group(name: str, run_dirs: list[Path]) -> dict[str, list[RolloutFile]]:
    """instance id → rollout files of one group, in (run directory, rollout number) order."""
    ordered: list[tuple[tuple[int, int, str], RolloutFile]] = []
    for dir_index, run_dir in enumerate(run_dirs):
        try:
            paths = list(iter_trajectory_files(run_dir))
        except TrajectoryError as exc:
            raise CovariateShiftError(f"group '{name}': {exc}") from None
        for path in paths:
            traj_id = path.parent.name
            instance_id, rollout = split_traj_id(traj_id)
            sort_key = (dir_index, -1 if rollout is None else rollout, traj_id)
            ordered.append((sort_key, RolloutFile(instance_id, traj_id, path)))
    if not ordered:
        dirs = ", ".join(str(run_dir) for run_dir in run_dirs)
        raise CovariateShiftError(f"group '{name}': no trajectories (<traj_id>/<traj_id>.traj) in {dirs}")
    by_instance: dict[str, list[RolloutFile]] = defaultdict(list)
    for _, rollout in sorted(ordered, key=lambda pair: pair[0]):
        by_instance[rollout.instance_id].append(rollout)
    return dict(by_instance)


def shared_instances(instances_by_group: Mapping[str, Collection[str]]) -> list[str]:
    """Instances every group has; when there are none, name the group that leaves nothing in common."""
    shared: set[str] | None = None
    seen: list[str] = []
    for name, instances in instances_by_group.items():
        common = set(instances) if shared is None else shared & set(instances)
        if not common:
            if not instances:
                raise CovariateShiftError(f"group '{name}': no usable trajectories")
            raise CovariateShiftError(
                f"group '{name}' shares no instance with {', '.join(repr(s) for s in seen)}: it has "
                f"{len(instances)} instances ({_examples(instances)}), they have {len(shared)} in common "
                f"({_examples(shared)}); every group needs rollouts of the same instances"
            )
        shared = common
        seen.append(name)
    return sorted(shared or ())


def check_enough_instances(instances_by_group: Mapping[str, Collection[str]], shared: int, needed: int) -> None:
    """Per-turn statistics need `needed` instances; name the group with the fewest when there are too few."""
    if shared >= needed:
        return
    name = min(instances_by_group, key=lambda group: len(instances_by_group[group]))
    raise CovariateShiftError(
        f"group '{name}': only {shared} instance(s) shared by all groups have a non-empty rollout "
        f"(this group has {len(instances_by_group[name])}); the metrics need at least {needed} "
        "(metrics.min_samples_per_turn): add rollouts of more instances or lower that setting"
    )


def select_rollouts(config: AnalysisConfig) -> Selection:
    """List every group (reference first), keep the shared instances and cap rollouts per instance."""
    order = [config.reference] + [name for name in config.groups if name != config.reference]
    listings = {name: list_group(name, config.groups[name].run_dirs) for name in order}
    shared = shared_instances({name: listing.keys() for name, listing in listings.items()})
    check_enough_instances(listings, len(shared), config.metrics.min_samples_per_turn)
    cap = config.bootstrap.max_rollouts_per_instance
    return {name: {iid: listing[iid][:cap] for iid in shared} for name, listing in listings.items()}
