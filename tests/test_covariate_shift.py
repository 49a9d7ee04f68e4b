"""Covariate-shift analysis: the divergences, the paired bootstrap, bad input, and a run on real trajectory files.

The metric tests use Gaussian vectors whose Fréchet distance and KL are known in closed form. The end-to-end tests
write small run directories with the trajectory models (an expert, a wandering student, an OEC run that switches,
and a plain SWE-agent run without roles) and embed them with the real all-MiniLM-L6-v2 model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from scipy.linalg import sqrtm

from covariate_shift_analysis.bootstrap import GroupTable, compare_levels
from covariate_shift_analysis.cache import EmbeddingCache
from covariate_shift_analysis.cli import main
from covariate_shift_analysis.config import AnalysisConfig, EmbeddingConfig
from covariate_shift_analysis.embedder import ELISION, TurnEmbedder, cache_identity
from covariate_shift_analysis.embedding import embed_selection
from covariate_shift_analysis.groups import select_rollouts
from covariate_shift_analysis.metrics import (
    MetricSettings,
    Sample,
    frechet_distance,
    gaussian_kl,
    mmd2,
    mmd2_permutation_pvalue,
)
from covariate_shift_analysis.turns import Turn
from sweagent.trajectory import (ModelInfo, OECInfo, Trajectory, TrajectoryError, TrajectoryInfo, TrajectoryStep,
                                 traj_id_for, traj_path)

NO_RIDGE = MetricSettings(ridge=0.0, bandwidth=1.0)


def _random_covariance(rng: np.random.Generator, dimension: int) -> np.ndarray:
    factor = rng.normal(size=(dimension, dimension))
    return factor @ factor.T / dimension + 0.5 * np.eye(dimension)


def _closed_form_frechet(m1: np.ndarray, s1: np.ndarray, m2: np.ndarray, s2: np.ndarray) -> float:
    root = np.real(sqrtm(s1))
    cross = np.real(sqrtm(root @ s2 @ root))
    return float((m1 - m2) @ (m1 - m2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(cross))


def _closed_form_kl(m1: np.ndarray, s1: np.ndarray, m2: np.ndarray, s2: np.ndarray) -> float:
    inverse = np.linalg.inv(s2)
    diff = m2 - m1
    logdet = np.linalg.slogdet(s2)[1] - np.linalg.slogdet(s1)[1]
    return float(0.5 * (np.trace(inverse @ s1) + diff @ inverse @ diff - len(m1) + logdet))


@pytest.mark.parametrize(("metric", "closed_form"), [(frechet_distance, _closed_form_frechet), (gaussian_kl, _closed_form_kl)])
def test_large_gaussian_samples_match_the_closed_form(metric, closed_form) -> None:
    rng = np.random.default_rng(7)
    m1, s1, m2, s2 = rng.normal(size=4), _random_covariance(rng, 4), rng.normal(size=4), _random_covariance(rng, 4)
    p = Sample(rng.multivariate_normal(m1, s1, 100_000), NO_RIDGE)
    q = Sample(rng.multivariate_normal(m2, s2, 100_000), NO_RIDGE)
    assert metric(p, q) == pytest.approx(closed_form(m1, s1, m2, s2), rel=0.01)


@pytest.mark.parametrize(("count", "dimension"), [(10, 30), (80, 12)])
def test_metrics_equal_the_textbook_formulas_on_the_sample_moments(count: int, dimension: int) -> None:
    """Per turn there are usually fewer samples than dimensions; both that route and the d×d one must be exact."""
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(count, dimension)), rng.normal(0.3, 1.5, size=(count + 2, dimension))
    ridge = 0.05
    p, q = Sample(x, MetricSettings(ridge, 1.0)), Sample(y, MetricSettings(ridge, 1.0))
    cov_x, cov_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    eigenvalues, eigenvectors = np.linalg.eigh(cov_x)
    root = eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None)) @ eigenvectors.T
    cross_trace = np.sqrt(np.clip(np.linalg.eigvalsh(root @ cov_y @ root), 0, None)).sum()
    diff = x.mean(0) - y.mean(0)
    expected_frechet = diff @ diff + np.trace(cov_x) + np.trace(cov_y) - 2 * cross_trace
    assert frechet_distance(p, q) == pytest.approx(expected_frechet, rel=1e-7)
    eye = np.eye(dimension)
    expected_kl = _closed_form_kl(x.mean(0), cov_x + ridge * eye, y.mean(0), cov_y + ridge * eye)
    assert gaussian_kl(p, q) == pytest.approx(expected_kl, rel=1e-7)


def test_weighted_distinct_vectors_equal_the_repeated_sample() -> None:
    """Bootstrap replicates pass each distinct vector once with its count: that must not change any metric."""
    rng = np.random.default_rng(6)
    settings = MetricSettings(ridge=0.02, bandwidth=2.0)
    x, y = rng.normal(size=(12, 20)), rng.normal(0.2, 1.0, size=(15, 20))
    counts = rng.integers(1, 4, size=12)
    weighted, repeated = Sample(x, settings, counts), Sample(np.repeat(x, counts, axis=0), settings)
    for metric in (frechet_distance, gaussian_kl, mmd2):
        assert metric(weighted, Sample(y, settings)) == pytest.approx(metric(repeated, Sample(y, settings)), rel=1e-7)


def test_identical_samples_have_zero_divergence_and_a_shift_raises_all_three() -> None:
    rng = np.random.default_rng(3)
    settings = MetricSettings(ridge=0.01, bandwidth=4.0)
    x = Sample(rng.normal(size=(40, 16)), settings)
    same = Sample(x.x.copy(), settings)
    for metric in (frechet_distance, gaussian_kl, mmd2):
        assert metric(x, same) == pytest.approx(0.0, abs=1e-9)
    near = Sample(rng.normal(size=(40, 16)), settings)
    far = Sample(rng.normal(size=(40, 16)) + 1.5, settings)
    for metric in (frechet_distance, gaussian_kl, mmd2):
        assert metric(x, far) > 2 * metric(x, near)


def test_mmd_permutation_pvalue_separates_a_shift_from_noise() -> None:
    rng = np.random.default_rng(4)
    instances = np.arange(30)
    x, y = rng.normal(size=(30, 8)), rng.normal(size=(30, 8))
    shifted = rng.normal(size=(30, 8)) + 0.8
    bandwidth = 4.0
    assert mmd2_permutation_pvalue(x, y, instances, instances, bandwidth, 500, rng) > 0.05
    assert mmd2_permutation_pvalue(shifted, y, instances, instances, bandwidth, 500, rng) < 0.01


def _config(tmp_path: Path, **sections: dict) -> AnalysisConfig:
    return AnalysisConfig.model_validate(
        {"groups": {"reference": str(tmp_path), "other": str(tmp_path)}, "reference": "reference", "output_dir": str(tmp_path), **sections}
    )


def _synthetic_groups(
    instances: int, rollouts: int, turns: int, dimension: int, drift: float
) -> tuple[list[GroupTable], np.ndarray]:
    """Reference N(0, I) at every turn; `same` from the same law; `shifted` moves by `drift` × turn along axis 0."""
    rng = np.random.default_rng(5)
    count = np.full(instances, rollouts)
    blocks, tables, offset = [], [], 0
    for name, step in (("reference", 0.0), ("same", 0.0), ("shifted", drift)):
        size = instances * rollouts
        vectors = rng.normal(size=(size, turns, dimension))
        vectors[:, :, 0] += step * np.arange(1, turns + 1)
        rows = offset + np.arange(size * turns).reshape(size, turns)
        rows[rng.random(size) < 0.2, turns - 1] = -1
        blocks.append(vectors.reshape(-1, dimension))
        tables.append(GroupTable(name, count, rows))
        offset += size * turns
    return tables, np.concatenate(blocks)


def test_bootstrap_bands_include_zero_for_identical_groups_and_detect_a_shifted_group(tmp_path: Path) -> None:
    tables, vectors = _synthetic_groups(instances=40, rollouts=3, turns=6, dimension=6, drift=0.6)
    reference, same, shifted = tables
    identical = GroupTable("identical", reference.count, reference.rows)
    config = _config(tmp_path, bootstrap={"replicates": 200, "seed": 11}, metrics={"permutations": 300})
    frame, _ = compare_levels([reference, identical, same, shifted], vectors, config, stream=0, progress=False)
    assert set(frame["metric"]) == {"frechet", "kl", "mmd"} and frame["replicates"].min() > 150

    own = frame[frame["group"] == "identical"]
    assert (own["ci_low"] <= 1e-9).all() and (own["ci_high"] >= -1e-9).all() and (own["ci_high"] < 1e-9).all()

    for metric in ("frechet", "kl", "mmd"):
        noise = frame[(frame["group"] == "same") & (frame["metric"] == metric)].set_index("level")
        moved = frame[(frame["group"] == "shifted") & (frame["metric"] == metric)].set_index("level")
        later = moved.index >= 3
        assert (moved["ci_low"][later] > noise["ci_high"][later]).all(), metric
        assert moved["mean"].iloc[-1] > 3 * moved["mean"].iloc[0], metric
    mmd = frame[frame["metric"] == "mmd"].set_index(["group", "level"])["p_value"]
    assert (mmd["shifted"].iloc[2:] < 0.01).all()
    assert (mmd["same"] > 0.05).sum() >= 5


def test_the_same_seed_gives_the_same_bands(tmp_path: Path) -> None:
    tables, vectors = _synthetic_groups(instances=12, rollouts=2, turns=3, dimension=4, drift=0.5)
    config = _config(tmp_path, bootstrap={"replicates": 30}, metrics={"permutations": 50})
    first, _ = compare_levels(tables, vectors, config, stream=0, progress=False)
    second, _ = compare_levels(tables, vectors, config, stream=0, progress=False)
    pd.testing.assert_frame_equal(first, second)


# ---- trajectory files -------------------------------------------------------------------------------------------

MODULES = ["parser", "config", "cache", "schema", "render", "client", "units", "tokens"]


def _expert_steps(instance: int, rollout: int) -> list[tuple[str, str]]:
    module = MODULES[instance % len(MODULES)]
    line = 40 + 7 * instance + rollout
    return [
        (f"find /repo/src -name '{module}*.py'", f"/repo/src/lib/{module}.py\n/repo/src/lib/{module}_utils.py"),
        (
            f"sed -n '{line - 5},{line + 15}p' /repo/src/lib/{module}.py",
            "\n".join(f"{line + k}    value = self._{module}_{k}(value)" for k in range(12)),
        ),
        (
            "python /repo/reproduce.py",
            f"Traceback (most recent call last):\n  File \"/repo/src/lib/{module}.py\", line {line}, in load\n"
            f"KeyError: '{module}_key'",
        ),
        (
            f"str_replace_editor str_replace /repo/src/lib/{module}.py --old_str 'data[key]' --new_str 'data.get(key)'",
            f"The file /repo/src/lib/{module}.py has been edited. Review the changes and make sure they are as expected.",
        ),
        (f"python -m pytest tests/test_{module}.py -q", f"{12 + instance} passed in 0.{rollout + 2}1s"),
        ("submit", f"diff --git a/src/lib/{module}.py b/src/lib/{module}.py\n-    return data[key]\n+    return data.get(key)"),
    ]


def _student_steps(instance: int, rollout: int) -> list[tuple[str, str]]:
    module = MODULES[instance % len(MODULES)]
    wander = [
        ("ls", "README.md  setup.py  src  tests"),
        ("cat setup.py | head -50", "from setuptools import setup\nsetup(name='lib', packages=['lib'])"),
        ("python reproduce.py", "python: can't open file 'reproduce.py': [Errno 2] No such file or directory"),
        (f"grep -rn 'def load' src | head", f"src/lib/{module}.py:{30 + instance}:    def load(self, key):"),
        (f"edit {30 + instance}:{32 + instance}\n    return data[key] or None\nend_of_edit", "bash: edit: command not found"),
        ("ls src/lib", " ".join(f"{name}.py" for name in MODULES)),
        ("python -c 'import lib'", "ModuleNotFoundError: No module named 'lib'"),
    ]
    return wander[: 5 + (instance + rollout) % 3] + [("ls", "README.md  setup.py  src  tests")]


def _save(run_dir: Path, instance_id: str, rollout: int, steps: list[TrajectoryStep], oec: OECInfo | None = None) -> None:
    traj = Trajectory(trajectory=steps, info=TrajectoryInfo(exit_status="submitted", oec=oec))
    traj.save(traj_path(run_dir, traj_id_for(instance_id, rollout)))


def _write_runs(root: Path, instances: int = 7, rollouts: int = 2) -> dict[str, Path]:
    """expert, student, an OEC run (student then expert) and a plain SWE-agent run (no roles) of the same tasks."""
    runs = {name: root / name for name in ("expert", "student", "oec", "plain")}
    for instance in range(instances):
        iid = f"lib__{MODULES[instance % len(MODULES)]}.{instance:04d}"
        for rollout in range(rollouts):
            expert, student = _expert_steps(instance, rollout), _student_steps(instance, rollout)
            _save(runs["expert"], iid, rollout, [TrajectoryStep(action=a, observation=o, model_role="expert") for a, o in expert])
            _save(runs["student"], iid, rollout, [TrajectoryStep(action=a, observation=o, model_role="student") for a, o in student])
            switch = 3
            mixed = [TrajectoryStep(action=a, observation=o) for a, o in student[:switch] + expert[1:]]
            oec = OECInfo(
                switch_type="step_count", switch_step_drawn=switch, switched_at_step=switch,
                student=ModelInfo(name="student"), expert=ModelInfo(name="expert"), seed=rollout,
            )
            _save(runs["oec"], iid, rollout, mixed, oec)
            plain = [{"action": a, "observation": o, "thought": "", "response": a} for a, o in expert]
            path = traj_path(runs["plain"], traj_id_for(iid, rollout))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"trajectory": plain, "history": [], "info": {"exit_status": "submitted"}}))
    return runs


def _run_cli(args: list[str], capsys) -> tuple[int, str]:
    code = main(args + ["--no-progress"])
    return code, capsys.readouterr().err


# ---- bad input --------------------------------------------------------------------------------------------------


def test_groups_without_shared_instances_name_the_group(tmp_path: Path, capsys) -> None:
    steps = [TrajectoryStep(action="ls", observation="a b")]
    for index in range(5):
        _save(tmp_path / "expert", f"a{index}", 0, steps)
        _save(tmp_path / "student", f"b{index}", 0, steps)
    code, err = _run_cli(
        ["--group", f"expert={tmp_path / 'expert'}", "--group", f"student={tmp_path / 'student'}", "--reference", "expert",
         "--output-dir", str(tmp_path / "out")], capsys,
    )
    assert code == 2
    assert "group 'student' shares no instance with 'expert'" in err and "Traceback" not in err


def test_too_few_rollouts_name_the_group_and_the_setting(tmp_path: Path, capsys) -> None:
    steps = [TrajectoryStep(action="ls", observation="a b")]
    for index in range(6):
        _save(tmp_path / "expert", f"i{index}", 0, steps)
    for index in range(2):
        _save(tmp_path / "student", f"i{index}", 0, steps)
    code, err = _run_cli(
        ["--group", f"expert={tmp_path / 'expert'}", "--group", f"student={tmp_path / 'student'}", "--reference", "expert",
         "--output-dir", str(tmp_path / "out")], capsys,
    )
    assert code == 2
    assert "group 'student': only 2 instance(s)" in err and "metrics.min_samples_per_turn" in err


def test_a_group_of_empty_trajectories_is_named(tmp_path: Path, capsys) -> None:
    for index in range(5):
        _save(tmp_path / "expert", f"i{index}", 0, [TrajectoryStep(action="ls", observation=f"file{index}")])
        _save(tmp_path / "student", f"i{index}", 0, [])
    code, err = _run_cli(
        ["--group", f"expert={tmp_path / 'expert'}", "--group", f"student={tmp_path / 'student'}", "--reference", "expert",
         "--output-dir", str(tmp_path / "out"), "--embedding.cache_dir", str(tmp_path / "cache")], capsys,
    )
    assert code == 2
    assert "group 'student': every selected trajectory is empty (no steps)" in err


@pytest.mark.parametrize(
    ("config_text", "extra", "expected"),
    [
        ("groups: {a: x, b: y}\nreference: a\noutput_dir: o\nbootstrap: {replicates: 0}\n", [], "key 'bootstrap.replicates'"),
        ("groups: {a: x, b: y}\nreference: c\noutput_dir: o\n", [], "key 'reference': 'c' is not a group"),
        ("groups: {a: x, b: y}\nreference: a\noutput_dir: o\nembedding: {modle: m}\n", [], "key 'embedding.modle'"),
        ("groups: {a: x}\nreference: a\noutput_dir: o\n", ["--group", "b"], "--group 'b': expected NAME=RUN_DIR"),
        ("groups: {a: x, b: y}\nreference: a\noutput_dir: o\n", [], "group 'a': x: run directory does not exist"),
    ],
)
def test_bad_settings_give_one_line_naming_the_key(tmp_path: Path, capsys, config_text: str, extra: list[str], expected: str) -> None:
    config = tmp_path / "shift.yaml"
    config.write_text(config_text)
    code, err = _run_cli(["--config", str(config), *extra], capsys)
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1


def test_a_corrupt_trajectory_names_the_file(tmp_path: Path, capsys) -> None:
    runs = _write_runs(tmp_path, instances=5, rollouts=1)
    broken = traj_path(runs["student"], "lib__parser.0000__r0")
    broken.write_text('{"trajectory": [')
    code, err = _run_cli(
        ["--group", f"expert={runs['expert']}", "--group", f"student={runs['student']}", "--reference", "expert",
         "--output-dir", str(tmp_path / "out"), "--embedding.cache_dir", str(tmp_path / "cache")], capsys,
    )
    assert code == 2 and str(broken) in err and "not valid JSON" in err


# ---- real embedding model ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedder(tmp_path_factory) -> TurnEmbedder:
    return TurnEmbedder(EmbeddingConfig(device="cpu", cache_dir=tmp_path_factory.mktemp("cache")))


def test_long_turns_are_cut_to_the_window_keeping_the_observation_head_and_tail(embedder: TurnEmbedder) -> None:
    observation = "\n".join(f"line {index}: value_{index} = compute({index})" for index in range(2000))
    long_action = " ".join(f"arg{index}" for index in range(400))
    short = Turn("ls", "README.md setup.py", "expert")
    texts = embedder.fit_texts([short, Turn("cat big.log", observation, "student"), Turn(long_action, observation, "expert")])
    assert texts[0] == short.text
    tokenizer = embedder.model.tokenizer
    for text in texts[1:]:
        assert len(tokenizer(text)["input_ids"]) <= embedder.model.max_seq_length
        assert ELISION in text and "line 0:" in text and "line 1999: value_1999 = compute(1999)" in text
    assert "cat big.log" in texts[1]
    action_part = texts[2].split("\nOBSERVATION: ")[0]
    assert "arg0" in action_part and "arg399" not in action_part
    assert len(tokenizer(action_part, add_special_tokens=False)["input_ids"]) <= embedder.budget // 2 + 3


def test_an_interrupted_pass_keeps_its_committed_batches_and_the_rerun_embeds_only_the_rest(
    tmp_path: Path, embedder: TurnEmbedder
) -> None:
    runs = _write_runs(tmp_path, instances=5, rollouts=1)
    broken = traj_path(runs["student"], traj_id_for("lib__render.0004", 0))
    intact = broken.read_text()
    broken.write_text('{"trajectory": [')
    config = AnalysisConfig.model_validate({
        "groups": {"expert": str(runs["expert"]), "student": str(runs["student"])}, "reference": "expert",
        "output_dir": str(tmp_path / "out"), "embedding": {"device": "cpu", "cache_dir": str(tmp_path / "cache"), "chunk_size": 4},
    })
    roles = {"expert": "expert", "student": "student"}
    selection = select_rollouts(config)
    with EmbeddingCache(config.embedding.cache_dir, cache_identity(embedder.config)) as cache:
        with pytest.raises(TrajectoryError, match="not valid JSON"):
            embed_selection(selection, roles, embedder, cache, chunk_size=4, progress=False)
        broken.write_text(intact)
        resumed = embed_selection(selection, roles, embedder, cache, chunk_size=4, progress=False)
        again = embed_selection(selection, roles, embedder, cache, chunk_size=4, progress=False)
    distinct = len({key for rollouts in resumed.rollouts.values() for rollout in rollouts for key in rollout.keys})
    assert 0 < resumed.embedded < distinct and again.embedded == 0


@pytest.fixture(scope="module")
def analysed(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("shift")
    runs = _write_runs(root)
    empty_id = traj_id_for("lib__parser.0000", 1)
    _save(runs["oec"], "lib__parser.0000", 1, [])
    config = root / "shift.yaml"
    config.write_text(
        "groups:\n"
        f"  expert: {runs['expert']}\n"
        f"  student: [{runs['student']}]\n"
        f"  oec: {{run_dirs: [{runs['oec']}], default_role: student}}\n"
        f"  plain_swe_agent: {runs['plain']}\n"
        "reference: expert\n"
        f"output_dir: {root / 'out'}\n"
        f"embedding: {{device: cpu, cache_dir: {root / 'cache'}, chunk_size: 64}}\n"
        "bootstrap: {replicates: 60, seed: 3}\n"
        "metrics: {permutations: 100}\n"
    )
    argv = ["--config", str(config), "--no-progress"]
    assert main(argv) == 0
    first = json.loads((root / "out" / "manifest.json").read_text())
    first_mmd = pd.read_csv(root / "out" / "mmd.csv")
    assert main(argv) == 0
    return {"root": root, "out": root / "out", "first": first, "first_mmd": first_mmd, "empty_id": empty_id}


def test_a_run_writes_one_csv_per_metric_with_bands_per_turn(analysed: dict) -> None:
    out = analysed["out"]
    for metric in ("frechet", "kl", "mmd"):
        frame = pd.read_csv(out / f"{metric}.csv")
        assert {"group", "turn", "n_group", "n_reference", "estimate_all_rollouts", "mean", "ci_low", "ci_high", "replicates"} <= set(frame.columns)
        assert set(frame["group"]) == {"student", "oec", "plain_swe_agent"}
        valid = frame.dropna(subset=["mean"])
        assert len(valid) >= 3 * 5 and (valid["ci_low"] <= valid["mean"] + 1e-9).all() and (valid["mean"] <= valid["ci_high"] + 1e-9).all()
    frechet = pd.read_csv(out / "frechet.csv").set_index(["group", "turn"])
    assert frechet.loc[("plain_swe_agent", 1), "estimate_all_rollouts"] == pytest.approx(0.0, abs=1e-6)
    assert frechet.loc[("student", 2), "ci_low"] > frechet.loc[("plain_swe_agent", 2), "ci_high"]
    trajectory = pd.read_csv(out / "trajectory_level.csv").set_index(["metric", "group"])
    assert trajectory.loc[("mmd", "student"), "p_value"] < 0.05
    assert trajectory.loc[("frechet", "student"), "estimate_all_rollouts"] > trajectory.loc[("frechet", "oec"), "estimate_all_rollouts"]


def test_turn_counts_record_who_took_each_turn(analysed: dict) -> None:
    counts = pd.read_csv(analysed["out"] / "turn_counts.csv").set_index(["group", "turn"])
    assert counts.loc[("student", 1), "expert_share"] == 0.0
    assert counts.loc[("plain_swe_agent", 1), "expert_share"] == 1.0
    assert counts.loc[("oec", 3), "expert_share"] == 0.0 and counts.loc[("oec", 4), "expert_share"] == 1.0
    assert counts.loc[("oec", 1), "trajectories"] == 13  # 7 instances x 2 rollouts, one empty skipped


def test_the_paper_figures_exist_as_png_and_pdf(analysed: dict) -> None:
    stems = [f"{metric}_{view}" for metric in ("frechet", "kl") for view in ("median", "sd", "range")]
    for stem in [*stems, "mmd_median", "trajectory_pca"]:
        png = analysed["out"] / "plots" / f"{stem}.png"
        image = imread(png)
        assert image.shape[0] > 300 and image.shape[1] > 300 and image.std() > 0.05
        assert (analysed["out"] / "plots" / f"{stem}.pdf").read_bytes().startswith(b"%PDF")


def test_the_views_are_drawn_from_bootstrap_statistics_in_the_csv(analysed: dict) -> None:
    frame = pd.read_csv(analysed["out"] / "kl.csv").dropna(subset=["median"])
    assert ((frame["min"] <= frame["ci_low"] + 1e-9) & (frame["ci_low"] <= frame["median"] + 1e-9)).all()
    assert ((frame["median"] <= frame["ci_high"] + 1e-9) & (frame["ci_high"] <= frame["max"] + 1e-9)).all()
    assert (frame["sd"] >= 0).all() and (frame.loc[frame["group"] == "student", "sd"] > 0).any()


def test_the_output_folder_readme_names_every_file_the_groups_and_the_command(analysed: dict) -> None:
    out, manifest = analysed["out"], analysed["first"]
    readme = (out / "README.md").read_text()
    for output in manifest["outputs"]:
        if output != "README.md":
            assert f"`{output.removesuffix('.pdf').removesuffix('.png')}" in readme, output
    assert "| **expert** (reference) | blue, circles |" in readme and "| student | orange, squares |" in readme
    assert "| 7 | 13 | 1 |" in readme  # oec: 7 shared instances, 13 trajectories, one empty one skipped
    assert "--no-progress" in readme and "replicates: 60" in readme


def test_the_manifest_records_settings_and_a_rerun_embeds_nothing_and_repeats_the_numbers(analysed: dict) -> None:
    first = analysed["first"]
    second = json.loads((analysed["out"] / "manifest.json").read_text())
    assert first["embedding"]["embedded_this_run"] == first["embedding"]["distinct_texts"] > 20
    assert second["embedding"]["embedded_this_run"] == 0
    assert second["config"]["bootstrap"] == {"replicates": 60, "max_rollouts_per_instance": 4, "seed": 3}
    assert second["groups"]["oec"]["empty_skipped"][0].endswith(f"{analysed['empty_id']}.traj")
    assert second["groups"]["plain_swe_agent"]["default_role"] == "expert"
    assert second["turn_definition"]["truncation_rule"].startswith("v1")
    assert second["metric_settings"]["per_turn"]["rbf_bandwidth"] > 0
    assert {"frechet.csv", "mmd.csv", "kl.csv", "plots/mmd_median.png", "plots/trajectory_pca.pdf", "README.md"} <= set(second["outputs"])
    pd.testing.assert_frame_equal(analysed["first_mmd"], pd.read_csv(analysed["out"] / "mmd.csv"))


def test_added_groups_only_embed_their_new_texts(analysed: dict) -> None:
    root = analysed["root"]
    extra = _write_runs(root / "more", instances=7, rollouts=1)
    code = main([
        "--group", f"expert={root / 'expert'}", "--group", f"again={extra['expert']}", "--reference", "expert",
        "--output-dir", str(root / "out2"), "--embedding.cache_dir", str(root / "cache"), "--embedding.device", "cpu",
        "--bootstrap.replicates", "20", "--metrics.permutations", "0", "--figures", "none", "--no-progress",
    ])
    assert code == 0
    manifest = json.loads((root / "out2" / "manifest.json").read_text())
    assert manifest["embedding"]["embedded_this_run"] == 0
    assert not (root / "out2" / "plots").exists() and "(none: `figures: none`)" in (root / "out2" / "README.md").read_text()
    assert pd.read_csv(root / "out2" / "mmd.csv")["p_value"].isna().all()
