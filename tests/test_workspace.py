"""Task workspaces: what the agent starts from, what evaluation starts from, and the pinned sources behind them."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from sweagent.environment.task_repos import profiles as repo_profiles
from sweagent.environment.task_repos.profiles import RepoProfileError, files_of_tests, get_profile
from sweagent.environment.task_repos.source_cache import SourceError, fetch_sdist, pristine_tree
from sweagent.environment.task_repos.tests_runner import run_tests
from sweagent.environment.task_repos.workspace import WorkspaceError, build_workspace
from sweagent.instance import InstanceError, PyPISdistSource, TaskInstance, load_instances

DEMO_INSTANCES = Path(__file__).resolve().parents[1] / "config" / "demo" / "instances.json"
WRONG_SHA256 = "0" * 64
ADDICT_REPO = "swesmith/mewwts__addict.75284f95"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def instance() -> TaskInstance:
    """A committed demo instance whose failing tests live in a file of their own kind (addict's one test module)."""
    return next(i for i in load_instances(DEMO_INSTANCES) if i.repo == ADDICT_REPO)


def test_a_cached_sdist_with_the_wrong_sha256_stops_the_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OEC_CACHE", str(tmp_path))
    (tmp_path / "sdists").mkdir()
    (tmp_path / "sdists" / "addict-2.4.0.tar.gz").write_bytes(b"not the real archive")
    source = get_profile(ADDICT_REPO).source
    with pytest.raises(SourceError) as error:
        pristine_tree(source)
    actual = hashlib.sha256(b"not the real archive").hexdigest()
    assert f"addict==2.4.0: sdist addict-2.4.0.tar.gz has sha256 {actual}, expected {source.sha256}" in str(error.value)
    assert not (tmp_path / "trees").exists()


@pytest.mark.slow
def test_a_downloaded_sdist_that_does_not_match_its_pin_is_not_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OEC_CACHE", str(tmp_path))
    pinned = get_profile(ADDICT_REPO).source
    wrong = PyPISdistSource(package="addict", version="2.4.0", sha256=WRONG_SHA256, filename=pinned.filename)
    with pytest.raises(SourceError, match=f"sha256 {pinned.sha256}, expected {WRONG_SHA256}"):
        fetch_sdist(wrong)
    assert list((tmp_path / "sdists").iterdir()) == []


def test_an_unknown_repository_says_what_to_add_and_where() -> None:
    with pytest.raises(RepoProfileError) as error:
        get_profile("nope")
    assert str(error.value).startswith("no repository profile for 'nope': add one (sdist pin and sha256, source and "
                                       "test paths) to a repo_profiles.yaml next to the instance file")
    assert "\n" not in str(error.value) and ADDICT_REPO in str(error.value)


def test_a_profiles_file_next_to_an_instance_file_adds_its_repositories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Adding a repository is data: a repo_profiles.yaml next to the instance file, read when the file is loaded."""
    monkeypatch.setattr(repo_profiles, "REPO_PROFILES", dict(repo_profiles.REPO_PROFILES))
    addict = get_profile(ADDICT_REPO)
    entry = {**addict.model_dump(mode="json", exclude={"python"}), "repo": "acme/acme__addict.b3b2210e"}
    (tmp_path / "repo_profiles.yaml").write_text(yaml.safe_dump([entry]))
    row = {"instance_id": "acme__addict.b3b2210e.func_pm_x__1", "repo": entry["repo"], "patch": ""}
    (tmp_path / "tasks.json").write_text(json.dumps([row]))
    with pytest.raises(RepoProfileError):
        get_profile(entry["repo"])
    load_instances(tmp_path / "tasks.json")
    assert get_profile(entry["repo"]).source == addict.source
    (tmp_path / "repo_profiles.yaml").write_text(yaml.safe_dump([{**entry, "test_paths": "nope", "extra": 1}]))
    with pytest.raises(InstanceError, match=r"repo_profiles.yaml: key '0\.\w+': "):
        load_instances(tmp_path / "tasks.json")


@pytest.mark.slow
def test_the_agent_workspace_has_the_bug_no_failing_tests_and_one_clean_commit(instance: TaskInstance, tmp_path: Path) -> None:
    workspace = build_workspace(instance, tmp_path / "repo")
    repo = workspace.path
    # The bug is in: its reverse applies cleanly.
    subprocess.run(["git", "-C", str(repo), "apply", "--reverse", "--check", "-"], input=instance.patch, text=True, check=True)
    hidden = files_of_tests(instance.FAIL_TO_PASS)
    assert workspace.hidden_test_files == tuple(hidden) and hidden
    assert all(not (repo / test_file).exists() for test_file in hidden)
    assert _git(repo, "status", "--porcelain") == ""
    # One commit only: no earlier commit from which `git diff` could recover the fix or the tests.
    assert _git(repo, "rev-list", "--count", "HEAD").strip() == "1"
    assert _git(repo, "rev-parse", "HEAD").strip() == workspace.base_commit
    assert _git(repo, "config", "--local", "user.name").strip() == "oec"


@pytest.mark.slow
def test_the_evaluation_variant_keeps_the_failing_tests_as_released(instance: TaskInstance, tmp_path: Path) -> None:
    workspace = build_workspace(instance, tmp_path / "eval", hide_fail_to_pass_tests=False)
    pristine = pristine_tree(get_profile(instance.repo).source)
    assert workspace.hidden_test_files == ()
    for test_file in files_of_tests(instance.FAIL_TO_PASS):
        assert (workspace.path / test_file).read_bytes() == (pristine / test_file).read_bytes()
    subprocess.run(["git", "-C", str(workspace.path), "apply", "--reverse", "--check", "-"], input=instance.patch, text=True, check=True)
    assert _git(workspace.path, "status", "--porcelain") == ""


@pytest.mark.slow
def test_workspaces_are_deterministic_and_need_no_global_git_identity(
    instance: TaskInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = build_workspace(instance, tmp_path / "a")
    monkeypatch.setenv("HOME", str(tmp_path / "empty-home"))  # no ~/.gitconfig anywhere
    second = build_workspace(instance, tmp_path / "b")
    assert first.base_commit == second.base_commit


@pytest.mark.slow
def test_running_the_tests_in_the_sandbox_leaves_the_agent_diff_empty(instance: TaskInstance, tmp_path: Path) -> None:
    workspace = build_workspace(instance, tmp_path / "repo", hide_fail_to_pass_tests=False)
    result = run_tests(workspace.path, workspace.profile, test_files=files_of_tests(instance.FAIL_TO_PASS))
    assert set(instance.FAIL_TO_PASS) <= result.failed()
    assert _git(workspace.path, "status", "--porcelain") == ""


@pytest.mark.slow
def test_a_patch_that_does_not_apply_names_the_instance_and_the_key(instance: TaskInstance, tmp_path: Path) -> None:
    lines = instance.patch.splitlines(keepends=True)
    first_context = next(i for i, line in enumerate(lines) if line.startswith(" "))
    lines[first_context] = " this line is not in the released file\n"
    broken = instance.model_copy(update={"patch": "".join(lines)})
    with pytest.raises(WorkspaceError, match=f"instance {instance.instance_id}: key 'patch' does not apply"):
        build_workspace(broken, tmp_path / "repo")
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("kind", ["relative", "absolute", "through a folder"])
def test_a_failing_test_outside_the_tree_is_refused_before_anything_is_deleted(instance, tmp_path, kind) -> None:
    """FAIL_TO_PASS names files the build deletes from the agent's view: a hostile id must not reach a host file
    (the tree is built at work/.repo.building-*/repo, three levels below the victim)."""
    victim = tmp_path / "victim.py"
    victim.write_text("host data")
    test_file = {"relative": "../../../victim.py", "absolute": str(victim), "through a folder": "tests/../../../../victim.py"}[kind]
    hostile = instance.model_copy(update={"FAIL_TO_PASS": [f"{test_file}::test_x"]})
    with pytest.raises(WorkspaceError, match=f"key 'FAIL_TO_PASS': test file '{test_file}' is not a relative path"):
        build_workspace(hostile, tmp_path / "work" / "repo")
    assert victim.read_text() == "host data" and not (tmp_path / "work" / "repo").exists()


def test_a_failing_test_file_missing_from_the_tree_names_it(instance: TaskInstance, tmp_path: Path) -> None:
    missing = instance.model_copy(update={"FAIL_TO_PASS": ["test_nowhere.py::test_x"]})
    with pytest.raises(WorkspaceError, match="names test file 'test_nowhere.py', which is not in the .* tree"):
        build_workspace(missing, tmp_path / "repo")
    assert not (tmp_path / "repo").exists()


def test_a_non_empty_destination_is_refused(instance: TaskInstance, tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "keep.txt").write_text("user data")
    with pytest.raises(WorkspaceError, match="must not exist or be an empty folder"):
        build_workspace(instance, tmp_path / "repo")
    assert (tmp_path / "repo" / "keep.txt").read_text() == "user data"


def test_checkouts_on_different_pythons_of_one_version_get_their_own_test_venv(tmp_path, monkeypatch):
    """A test venv's `python` links to the installation it was built from, and the sandbox shows only the running
    one's: a checkout on Debian's 3.11 must not take the venv a checkout on a pyenv 3.11 built (its link would
    dangle there, and every test run would fail with `failed to execute python`)."""
    import sys

    from sweagent.environment.task_repos import test_venv

    monkeypatch.setenv("OEC_CACHE", str(tmp_path))
    profile = get_profile(ADDICT_REPO)
    built = {}
    for base in ("/opt/pyenv/versions/3.11.7", "/usr"):
        monkeypatch.setattr(sys, "base_prefix", base)
        monkeypatch.setattr(test_venv, "_build", lambda profile, path: (path.mkdir(parents=True), (path / test_venv._STAMP).touch()))
        built[base] = test_venv.ensure_test_venv(profile).path
        monkeypatch.setattr(test_venv, "_build", lambda profile, path: pytest.fail(f"{path} built twice"))
        assert test_venv.ensure_test_venv(profile).path == built[base]  # the stamped one is reused by its own Python
    assert len(set(built.values())) == 2 and all(path.parent == tmp_path / "venvs" for path in built.values())


@pytest.mark.parametrize("member", ["../escape.py", "/abs.py", "link-out", "fifo"])
def test_an_sdist_member_that_leaves_the_tree_or_is_a_special_file_is_refused(tmp_path, member):
    """PEP 706's `data` rules on every Python 3.11 (Debian 12's 3.11.2 has no tarfile filters)."""
    import io
    import tarfile

    from sweagent.environment.task_repos.source_cache import _extract

    archive = tmp_path / "pkg-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tarred:
        ok = tarfile.TarInfo("pkg-1.0/ok.py")
        ok.size = 2
        tarred.addfile(ok, io.BytesIO(b"1\n"))
        bad = tarfile.TarInfo(f"pkg-1.0/{member}" if member in ("link-out", "fifo") else member)
        if member == "link-out":
            bad.type, bad.linkname = tarfile.SYMTYPE, "../../etc/passwd"
        elif member == "fifo":
            bad.type = tarfile.FIFOTYPE
        tarred.addfile(bad, io.BytesIO(b""))
    with pytest.raises(SourceError, match="pkg-1.0.tar.gz: member .*(outside the extracted tree|special file)"):
        _extract(archive, tmp_path / "out")
    assert not (tmp_path / "escape.py").exists() and not (tmp_path / "out" / "pkg-1.0" / "ok.py").exists()
