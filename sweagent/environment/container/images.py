"""Docker images in SWE-smith's layout, built with no registry and no network: `scripts/docker_images.sh build`.

The base is Debian bookworm made by debootstrap (minbase plus python3, venv, git, patch and CA certificates); its
tarball is cached under `$OEC_CACHE/docker/`, so a re-import takes seconds. Each repository profile of an instance
file then gets one image, named by SWE-smith's rule (`swesmith_profiles.image_name`), built in a container with
`--network none` from the pristine sdist tree and test wheels downloaded on the host, and committed:

    /testbed                       the pristine tree as a git repository: `main` holds it as one commit, and each
                                   instance has a branch named by its instance_id with two commits on top (the bug,
                                   then the removal of its FAIL_TO_PASS test files), as SWE-smith's mirrors do;
                                   owned by the docker deployment's user (git trusts it for root, who grades)
    /opt/miniconda3/envs/testbed   the test venv: the image's python3 and the profile's pins, with a .pth that puts
                                   the code root on the import path (SWE-smith installs the package editable)
    /opt/miniconda3/bin/activate   lets SWE-smith's test command (`source .../activate; conda activate testbed`)
                                   put that venv first on PATH; there is no conda
    ENV                            the venv first on PATH, as in the sandbox, so `python` and `pytest` are its own

Every image carries the hash of its inputs (label `oec.inputs`): a build skips an image whose label matches and
rebuilds one whose profile, pins or instances changed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from sweagent.environment.container.deployment import ContainerError, engine_failure, run_engine
from sweagent.environment.task_repos.profiles import DEFAULT_MOUNT, RepoProfile, files_of_tests, get_profile
from sweagent.environment.task_repos.test_venv import RepoVenv
from sweagent.utils.cli import StageParser
from sweagent.environment.sandbox.bwrap import SANDBOX_UID
from sweagent.environment.task_repos.source_cache import cache_root, pristine_tree
from sweagent.environment.container.swesmith_profiles import image_name
from sweagent.environment.task_repos.workspace import _GIT_ENV, _LOCAL_CONFIG
from sweagent.instance import TaskInstance, load_instances
from sweagent import REPO_ROOT

DEFAULT_INSTANCES = REPO_ROOT / "config" / "demo" / "instances.json"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ("python3", "python3-venv", "git", "patch", "ca-certificates")
IMAGE_VENV = "/opt/miniconda3/envs/testbed"
"""Where SWE-smith's images keep the test environment (a conda env there, a venv here)."""
INPUTS_LABEL = "oec.inputs"
_LAYOUT_VERSION = 2
"""Bump when the image layout changes, so every image is rebuilt."""
_ACTIVATE = f"""# SWE-smith's test command runs `source /opt/miniconda3/bin/activate; conda activate testbed`. There is no conda
# in this image: `conda activate NAME` activates the venv {IMAGE_VENV.rsplit("/", 1)[0]}/NAME.
conda() {{
  if [ "$1" = activate ]; then . "{IMAGE_VENV.rsplit("/", 1)[0]}/$2/bin/activate"; else echo "conda: only 'activate' exists here" >&2; return 1; fi
}}
"""


class ImageBuildError(RuntimeError):
    """A step of an image build failed; the message names the image, the step and where its log is."""


def docker_dir() -> Path:
    return cache_root() / "docker"


def _digest(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _run(command: Sequence[str], what: str, log: Path) -> None:
    """Run a build step with its output appended to `log`; a failure names the step and the log."""
    with log.open("a", encoding="utf-8") as handle:
        handle.write(f"$ {shlex.join(command)}\n")
        handle.flush()
        result = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise ImageBuildError(f"{what} failed (exit {result.returncode}); log: {log}")


def image_inputs(engine: str, image: str) -> str | None:
    """The inputs hash an existing image was built from, or None when there is no such image."""
    result = run_engine(engine, "image", "inspect", "--format", f'{{{{index .Config.Labels "{INPUTS_LABEL}"}}}}', image)
    if result.returncode == 0:
        return result.stdout.strip()
    failure = engine_failure(engine, result)
    if failure is not None:
        raise failure
    return None


class ImageBuilder:
    """Builds the base image and one image per repository profile with `engine` (docker or podman)."""

    def __init__(self, engine: str = "docker", mirror: str = DEBIAN_MIRROR) -> None:
        self.engine = engine
        self.mirror = mirror
        self.logs = docker_dir() / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def base_image(self) -> str:
        """The debootstrapped base image (imported from the cached tarball, which is made the first time)."""
        inputs = _digest({"suite": "bookworm", "variant": "minbase", "include": BASE_PACKAGES, "mirror": self.mirror})
        tag = f"oec/debian-bookworm-minbase:{inputs[:12]}"
        if image_inputs(self.engine, tag) == inputs:
            return tag
        tarball = docker_dir() / "base" / f"debian-bookworm-minbase-{inputs[:12]}.tar"
        if not tarball.is_file():
            self._debootstrap(tarball)
        print(f"[docker_images] importing {tarball.name} as {tag}", flush=True)
        _run([self.engine, "import", "--change", f"LABEL {INPUTS_LABEL}={inputs}", str(tarball), tag], f"importing {tag}", self.logs / "base.log")
        return tag

    def _debootstrap(self, tarball: Path) -> None:
        if shutil.which("debootstrap") is None:
            raise ImageBuildError("debootstrap: not installed (apt-get install -y debootstrap, or run scripts/docker_images.sh build)")
        tarball.parent.mkdir(parents=True, exist_ok=True)
        log = self.logs / "base.log"
        print(f"[docker_images] debootstrap bookworm from {self.mirror} (about 1-4 minutes; log: {log})", flush=True)
        with tempfile.TemporaryDirectory(dir=tarball.parent, prefix=".rootfs-") as work:
            rootfs = Path(work) / "rootfs"
            command = ["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", "bookworm", str(rootfs), self.mirror]
            _run(command, "debootstrap", log)
            partial = Path(work) / "base.tar"
            _run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], "packing the base tarball", log)
            os.replace(partial, tarball)

    def wheels(self, profile: RepoProfile) -> Path:
        """The profile's pinned test wheels, downloaded on the host once (the image build has no network)."""
        folder = docker_dir() / "wheels" / profile.venv_key()
        if (folder / ".complete").is_file():
            return folder
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
            "--only-binary", ":all:", "--python-version", profile.python, "--dest", str(folder), *profile.test_deps,
        ]
        _run(command, f"downloading {' '.join(profile.test_deps)}", self.logs / f"{profile.repo_name}.log")
        (folder / ".complete").write_text("\n".join(profile.test_deps) + "\n", encoding="utf-8")
        return folder

    def profile_image(self, profile: RepoProfile, instances: Sequence[TaskInstance], base: str) -> str:
        """The repository's image with the given instances' branches; built unless one with these inputs exists."""
        tag = image_name(profile)
        rows = sorted((i.instance_id, i.patch, tuple(files_of_tests(i.FAIL_TO_PASS))) for i in instances)
        inputs = _digest({"layout": _LAYOUT_VERSION, "base": base, "profile": profile.model_dump(mode="json"), "instances": rows})
        if image_inputs(self.engine, tag) == inputs:
            print(f"[docker_images] {tag}: up to date ({len(rows)} instances)", flush=True)
            return tag
        log = self.logs / f"{profile.repo_name}.log"
        log.write_text("", encoding="utf-8")
        print(f"[docker_images] {tag}: building ({len(rows)} instances; log: {log})", flush=True)
        tree, wheels = pristine_tree(profile.source), self.wheels(profile)
        with tempfile.TemporaryDirectory(prefix="oec-image-") as work:
            (Path(work) / "build.sh").write_text(self._build_script(profile, rows, Path(work)), encoding="utf-8")
            container = f"oec-image-build-{uuid.uuid4().hex[:8]}"
            mounts = [(tree, "/oec/src"), (wheels, "/oec/wheels"), (Path(work), "/oec/build")]
            create = [self.engine, "create", "--network", "none", "--name", container]
            create += [arg for host, inside in mounts for arg in ("--mount", f"type=bind,src={host},dst={inside},readonly")]
            _run([*create, base, "/bin/bash", "/oec/build/build.sh"], f"{tag}: creating the build container", log)
            try:
                _run([self.engine, "start", "--attach", container], f"{tag}: building /testbed and the test venv", log)
                changes = [f"ENV {key}={value}" for key, value in self._image_env(profile).items()]
                changes += [f"WORKDIR {DEFAULT_MOUNT}", 'CMD ["/bin/bash"]', f"LABEL {INPUTS_LABEL}={inputs}"]
                _run([self.engine, "commit", *(arg for change in changes for arg in ("--change", change)), container, tag],
                     f"{tag}: committing", log)
            finally:
                subprocess.run([self.engine, "rm", "--force", container], capture_output=True)
        return tag

    @staticmethod
    def _image_env(profile: RepoProfile) -> dict[str, str]:
        """The sandbox's test environment for this venv, except PYTHONPATH (the venv's .pth does that here)."""
        env = RepoVenv(Path(IMAGE_VENV)).env(profile.pythonpath(DEFAULT_MOUNT))
        del env["PYTHONPATH"]
        return env

    @staticmethod
    def _build_script(profile: RepoProfile, rows: list[tuple[str, str, tuple[str, ...]]], work: Path) -> str:
        """Bash run in the build container: /testbed with one branch per instance, the venv, the activate shim."""
        quote, python = shlex.quote, f"{IMAGE_VENV}/bin/python"
        lines = ["set -euo pipefail", *(f"export {key}={quote(value)}" for key, value in _GIT_ENV.items())]
        lines += [f"cp -a /oec/src/. {DEFAULT_MOUNT}", f"python3 -m venv {IMAGE_VENV}"]
        lines.append(f"{python} -m pip install --quiet --disable-pip-version-check --no-index --find-links /oec/wheels --no-deps "
                     + " ".join(map(quote, profile.test_deps)))
        site = f"$({python} -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])')"
        lines.append(f"echo {quote(profile.pythonpath(DEFAULT_MOUNT))} > \"{site}/oec-testbed.pth\"")
        lines += ["mkdir -p /opt/miniconda3/bin", f"cat > /opt/miniconda3/bin/activate <<'OEC_EOF'\n{_ACTIVATE}OEC_EOF"]
        lines += [f"cd {DEFAULT_MOUNT}", "git init --quiet --initial-branch=main"]
        lines += [f"git config --local {quote(key)} {quote(value)}" for key, value in _LOCAL_CONFIG.items()]
        lines += ["git add --all", "git commit --quiet --no-verify -m 'Initial commit'"]
        for index, (instance_id, patch, hidden) in enumerate(rows):
            (work / f"{index}.patch").write_text(patch if patch.endswith("\n") or not patch else patch + "\n", encoding="utf-8")
            lines += [f"git checkout --quiet -b {quote(instance_id)} main"]
            if patch.strip():
                lines.append(f"git apply --whitespace=nowarn /oec/build/{index}.patch")
            lines.append(f"git add --all && git commit --quiet --no-verify --allow-empty -m 'Bug Patch'")
            if hidden:
                lines.append(f"git rm --quiet -- {' '.join(map(quote, hidden))}")
            lines.append("git commit --quiet --no-verify --allow-empty -m 'Remove F2P Tests'")
        lines.append("git checkout --quiet main")
        # The deployment's user owns the tree from the start (a chown at every start would copy each file up);
        # SWE-smith's harness runs git in it as root, which git allows for a repository another user owns only so.
        lines += [f"chown -R {SANDBOX_UID}:{SANDBOX_UID} {DEFAULT_MOUNT}", "git config --system --add safe.directory '*'"]
        return "\n".join(lines) + "\n"

    def build(self, instances: Sequence[TaskInstance]) -> list[str]:
        """Every image the instances need, in one pass under a lock (two builds at once would race on tags)."""
        by_repo: dict[str, list[TaskInstance]] = defaultdict(list)
        for instance in instances:
            by_repo[instance.repo].append(instance)
        profiles = {repo: get_profile(repo) for repo in sorted(by_repo)}
        for repo, members in by_repo.items():
            expected = image_name(profiles[repo])
            other = next((i for i in members if i.image_name not in (None, expected)), None)
            if other is not None:
                raise ImageBuildError(f"instance {other.instance_id}: image_name '{other.image_name}', but the image of {repo} is '{expected}'")
        with open(docker_dir() / ".build.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            base = self.base_image()
            return [self.profile_image(profiles[repo], by_repo[repo], base) for repo in profiles]


def main(argv: list[str] | None = None) -> int:
    parser = StageParser(prog="docker_images.sh build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=Path, action="append", metavar="FILE",
                        help=f"instance file(s) whose repositories get images (default: {DEFAULT_INSTANCES.relative_to(DEFAULT_INSTANCES.parents[2])})")
    parser.add_argument("--engine", default="docker", help="container CLI: docker (default) or podman")
    parser.add_argument("--mirror", default=DEBIAN_MIRROR, help=f"Debian mirror for the base image (default {DEBIAN_MIRROR})")
    args = parser.parse_args(argv)
    try:
        instances = [instance for path in args.instances or [DEFAULT_INSTANCES] for instance in load_instances(path)]
        tags = ImageBuilder(args.engine, args.mirror).build(instances)
    except (ValueError, ImageBuildError, ContainerError) as exc:
        print(f"docker_images: {exc}", file=sys.stderr)
        return 2
    print(f"[docker_images] {len(tags)} images ready: {', '.join(tags)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
