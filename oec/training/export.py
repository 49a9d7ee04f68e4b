"""A trained student as GGUF for llama.cpp, with the converters llama.cpp maintains, and registered to be served by name.

The converters (`convert_lora_to_gguf.py`, `convert_hf_to_gguf.py` with their `conversion/` and `gguf-py/`) come from
the llama.cpp tree vendored in the `llama-cpp-python` sdist, pinned below by version and sha256 like every other
source we fetch: pip downloads the sdist once, and only those files are unpacked into `$OEC_CACHE/tools/`. Nothing is
built or installed. A LoRA adapter becomes a GGUF adapter that llama.cpp applies on top of the base GGUF at load
time; fully fine-tuned weights become a GGUF model of their own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from sweagent.environment.task_repos.source_cache import SourceError, extract_data_members, fetch_sdist
from sweagent.instance import PyPISdistSource
from sweagent.local_models.trained import TrainedModel, register_trained
from sweagent.utils.cache import cache_root
from sweagent.utils.files import write_json_atomic

from oec.training.errors import TrainingError
from oec.training.trainer import BASE_CONFIG_DIR, MANIFEST, MODEL_DIR

CONVERTER_SOURCE = PyPISdistSource(
    package="llama-cpp-python", version="0.3.36", filename="llama_cpp_python-0.3.36.tar.gz",
    sha256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e",
)
_VENDORED = "llama_cpp_python-0.3.36/vendor/llama.cpp/"
_WANTED = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "conversion/", "gguf-py/")


def converter_tree() -> Path:
    """llama.cpp's conversion scripts, unpacked once from the pinned sdist (verified by sha256)."""
    final = cache_root() / "tools" / f"llama.cpp-convert-{CONVERTER_SOURCE.sha256[:16]}"
    if (final / "convert_lora_to_gguf.py").is_file():
        return final
    try:
        archive = fetch_sdist(CONVERTER_SOURCE)
    except SourceError as exc:
        raise TrainingError(f"cannot fetch llama.cpp's GGUF converters: {exc}") from None
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=final.parent, prefix=".unpack-"))
    try:
        with tarfile.open(archive) as tarred:
            members = []
            for member in tarred.getmembers():
                relative = member.name.removeprefix(_VENDORED)
                if relative != member.name and relative.startswith(_WANTED) and (member.isfile() or member.isdir()):
                    member.name = relative
                    members.append(member)
            extract_data_members(tarred, members, scratch, archive)
    except SourceError as exc:
        raise TrainingError(f"cannot unpack llama.cpp's GGUF converters: {exc}") from None
    else:
        try:
            os.rename(scratch, final)
        except OSError:
            if not (final / "convert_lora_to_gguf.py").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return final


def _convert(script: str, arguments: list[str]) -> None:
    command = [sys.executable, str(converter_tree() / script), *arguments]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise TrainingError(f"llama.cpp's {script} failed: {tail}")


def export_for_serving(output_dir: Path, name: str, outtype: str = "f16") -> dict[str, Any]:
    """Convert `output_dir/model` to GGUF under `output_dir/gguf/` and register it as the local model `name`;
    returns the manifest with a `serving` entry."""
    manifest = json.loads((output_dir / MANIFEST).read_text(encoding="utf-8"))
    model_dir, gguf_dir = output_dir / MODEL_DIR, output_dir / "gguf"
    gguf_dir.mkdir(exist_ok=True)
    lora = (model_dir / "adapter_config.json").is_file()
    if lora:
        if manifest["model"]["kind"] != "gguf":
            raise TrainingError(f"{output_dir}: a LoRA adapter is served on its base GGUF, but the base was "
                                f"{manifest['model']['path']}; train on a .gguf model or with finetuning: full")
        target = gguf_dir / "adapter.gguf"
        _convert("convert_lora_to_gguf.py", ["--base", str(output_dir / BASE_CONFIG_DIR), "--outtype", outtype,
                                             "--outfile", str(target), str(model_dir)])
        trained = TrainedModel(name=name, model_path=manifest["model"]["path"], lora_path=str(target.resolve()),
                               trained_in=str(output_dir.resolve()))
    else:
        target = gguf_dir / "model.gguf"
        _convert("convert_hf_to_gguf.py", ["--outtype", outtype, "--outfile", str(target), str(model_dir)])
        trained = TrainedModel(name=name, model_path=str(target.resolve()), trained_in=str(output_dir.resolve()))
    manifest["serving"] = {**trained.model_dump(), "registry": str(register_trained(trained))}
    write_json_atomic(output_dir / MANIFEST, manifest)
    return manifest
