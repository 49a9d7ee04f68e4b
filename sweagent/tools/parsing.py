"""Reading actions out of model answers and writing them back: SWE-agent 1.x's three parse functions.

Every action has one canonical form, `ToolCall(name, arguments, id)`. Each parser reads an answer into
(thought, call) and renders (thought, call) back into an answer of its format, so a history can move between
native tool calls, XML function calls and fenced shell blocks when a rollout switches models or becomes SFT data.

The environment runs `call_to_action(call)`. The command-line rule: `bash` runs its `command` verbatim; any other
tool runs as `name` followed by its arguments in the order the bundle declares them, required ones positional,
optional ones as `--name value`, every word shell-quoted; arrays give one word per item (`--view_range 1 20`),
optional booleans are a bare flag when true (`--force`) and absent when false. The bundles' executables must take
the word after `--name` as its value even when it starts with `-` (plain argparse does not). `action_to_call` is
the inverse, so text actions become native calls and back.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from sweagent.tools.commands import Argument, Command

BASH = "bash"


class FormatError(Exception):
    """The answer does not follow the parse format; the message says what is wrong and is shown to the model."""


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    """Native tool-call id; None for calls read from text."""


@dataclass
class ParsedOutput:
    thought: str
    call: ToolCall
    action: str
    """The shell command line the environment runs."""


@dataclass
class RenderedOutput:
    content: str
    tool_calls: list[dict[str, Any]] | None = None
    """OpenAI-format tool calls (native function calling only)."""


# ---- arguments --------------------------------------------------------------------------------------------------

_EXPECTED = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false"}


def _scalar(kind: str, value: Any) -> Any:
    """`value` as JSON type `kind`; text (from XML or a shell line) is converted. ValueError when impossible."""
    if kind == "string":
        if isinstance(value, str):
            return value
    elif kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
    elif kind in ("integer", "number"):
        number = json.loads(value.strip()) if isinstance(value, str) else value
        if isinstance(number, float) and kind == "integer" and number.is_integer():
            number = int(number)
        allowed = (int,) if kind == "integer" else (int, float)
        if isinstance(number, allowed) and not isinstance(number, bool):
            return number
    else:
        return value  # object-typed arguments are passed through as the model gave them
    raise ValueError(kind)


def _coerce(command: Command, arg: Argument, value: Any) -> Any:
    item_kind = (arg.items or {}).get("type", "string")
    try:
        if arg.type == "array":
            items = json.loads(value) if isinstance(value, str) else value
            if not isinstance(items, list):
                raise ValueError(arg.type)
            result: Any = [_scalar(item_kind, item) for item in items]
        else:
            result = _scalar(arg.type, value)
    except (ValueError, TypeError):  # json.JSONDecodeError is a ValueError
        expected = f"a JSON list of {item_kind} values" if arg.type == "array" else _EXPECTED.get(arg.type, arg.type)
        raise FormatError(f"parameter '{arg.name}' of '{command.name}' must be {expected}, got {value!r}") from None
    if arg.enum and result not in arg.enum:
        raise FormatError(f"parameter '{arg.name}' of '{command.name}' must be one of {', '.join(arg.enum)}; got {result!r}")
    return result


def _find_command(name: str, commands: list[Command]) -> Command:
    for command in commands:
        if command.name == name:
            return command
    available = ", ".join(c.name for c in commands) or "(none)"
    raise FormatError(f"unknown function '{name}'; the available functions are: {available}")


def validate_call(name: str, arguments: dict[str, Any], commands: list[Command], call_id: str | None = None) -> ToolCall:
    """A checked call with arguments converted to their declared types and put in the bundle's order.

    JSON null and `false` for an optional boolean both mean "absent", so every action has one canonical form.
    """
    command = _find_command(name, commands)
    checked: dict[str, Any] = {}
    missing = []
    for arg in command.arguments:
        value = arguments.get(arg.name)
        if value is None:
            if arg.required:
                missing.append(arg.name)
            continue
        value = value if arg.type == "string" and isinstance(value, str) and not arg.enum else _coerce(command, arg, value)
        if value is not False or arg.required or arg.type != "boolean":
            checked[arg.name] = value
    unknown = sorted(arguments.keys() - {arg.name for arg in command.arguments})
    if unknown:
        known = ", ".join(sorted(arg.name for arg in command.arguments)) or "(none)"
        raise FormatError(f"unknown parameter(s) {', '.join(unknown)} for '{name}'; its parameters are: {known}")
    if missing:
        raise FormatError(f"missing required parameter(s) {', '.join(missing)} for '{name}'")
    return ToolCall(name=name, arguments=checked, id=call_id)


# ---- the command line -------------------------------------------------------------------------------------------

# One piece of a shell word that bash only unquotes (plain characters exclude blanks, quotes, operators,
# redirections, expansions, globs and comments).
_WORD_PIECE = (
    r"""[^\s'"\\;&|<>()$`*?\[\]{}~#!]+"""  # plain characters
    r"|\\[^\n]"  # a backslash escape
    r"|'[^']*'"  # a single-quoted string
    r'|"(?:[^"\\$`]|\\[^$`\n])*"'  # a double-quoted string without $ or backtick expansion
)
_WORD = re.compile(f"(?:{_WORD_PIECE})+")
_PIECE = re.compile(_WORD_PIECE)
_BLANKS = re.compile(r"[ \t]*")
_DOUBLE_QUOTED_ESCAPE = re.compile(r'\\(["\\])')
_QUOTING = re.compile(r"""['"\\]""")


def _unquote(piece: str) -> str:
    if piece[0] == "'":
        return piece[1:-1]
    if piece[0] == '"':
        return _DOUBLE_QUOTED_ESCAPE.sub(r"\1", piece[1:-1])
    return piece[1] if piece[0] == "\\" else piece


def _shell_words(line: str) -> list[str] | None:
    """The words bash would pass to one simple command, or None when bash would do more than split and unquote
    (operators, redirections, expansions, globs, comments, several lines)."""
    words = []
    position = _BLANKS.match(line).end()
    while position < len(line):
        word = _WORD.match(line, position)
        if word is None:
            return None
        text = word.group()
        words.append("".join(_unquote(piece) for piece in _PIECE.findall(text)) if _QUOTING.search(text) else text)
        position = _BLANKS.match(line, word.end()).end()
    return words


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def call_to_action(call: ToolCall, commands: list[Command]) -> str:
    """The shell command line that runs `call` (the module docstring states the rule)."""
    return _command_line(call if call.name == BASH else validate_call(call.name, call.arguments, commands), commands)


def _command_line(call: ToolCall, commands: list[Command]) -> str:
    """`call_to_action` for a call that `validate_call` already checked."""
    if call.name == BASH:
        return str(call.arguments.get("command", ""))
    command = _find_command(call.name, commands)
    options = {f"--{arg.name}" for arg in command.arguments if not arg.required}
    words = [shlex.quote(call.name)]
    for arg in command.arguments:
        if arg.name not in call.arguments:
            continue
        value = call.arguments[arg.name]
        if arg.required and isinstance(value, str) and value in options:
            raise FormatError(f"parameter '{arg.name}' of '{call.name}' cannot be {value!r}: that is the name of an option")
        if not arg.required:
            words.append(f"--{arg.name}")
            if arg.type == "boolean":
                continue
        items = value if arg.type == "array" else [value]
        words.extend(shlex.quote(_text(item)) for item in items)
    return " ".join(words)


def _words_to_call(command: Command, words: list[str]) -> ToolCall | None:
    """Inverse of the command-line rule for one command; None when the words do not fit its arguments."""
    options = {f"--{arg.name}": arg for arg in command.arguments if not arg.required}
    positional = [arg for arg in command.arguments if arg.required]
    values: dict[str, Any] = {}
    index = 0
    while index < len(words):
        arg = options.get(words[index])
        if arg is None:
            if not positional:
                return None
            arg = positional.pop(0)
        elif arg.name in values:
            return None
        else:
            index += 1
            if arg.type == "boolean":
                values[arg.name] = True
                continue
        if arg.type == "array":
            end = index
            while end < len(words) and words[end] not in options:
                end += 1
            values[arg.name], index = words[index:end], end
        elif index < len(words):
            values[arg.name], index = words[index], index + 1
        else:
            return None
    try:
        return validate_call(command.name, values, [command])
    except FormatError:
        return None


def action_to_call(action: str, commands: list[Command]) -> ToolCall:
    """The call a shell action stands for: a bundle tool when the line is exactly one invocation of it,
    otherwise `bash` with the line verbatim (always faithful: `call_to_action` gives the same line back)."""
    words = _shell_words(action)
    if words and words[0] != BASH:
        command = next((c for c in commands if c.name == words[0]), None)
        call = _words_to_call(command, words[1:]) if command is not None else None
        if call is not None:
            return call
    return ToolCall(name=BASH, arguments={"command": action})


# ---- parsers ----------------------------------------------------------------------------------------------------


class _Parser(BaseModel, ABC):
    model_config = ConfigDict(extra="forbid")

    _instructions: ClassVar[str] = ""

    def format_instructions(self) -> str:
        """How to answer, for the system prompt (`{{format_instructions}}`)."""
        return self._instructions

    @abstractmethod
    def parse(self, content: str | None, tool_calls: list[dict[str, Any]] | None, commands: list[Command]) -> ParsedOutput:
        """Read one answer; raises FormatError saying what is wrong."""

    @abstractmethod
    def render(self, thought: str, call: ToolCall, commands: list[Command]) -> RenderedOutput:
        """Write one answer in this format."""


def _call_id(call: ToolCall) -> str:
    """A stable id for a call that has none (so re-rendering the same history gives the same bytes)."""
    digest = hashlib.sha256(json.dumps([call.name, call.arguments], sort_keys=True).encode()).hexdigest()
    return f"call_{digest[:24]}"


class FunctionCallingParser(_Parser):
    """Native tool calls (`tool_calls` in the model response); the message text is the thought."""

    type: Literal["function_calling"] = "function_calling"
    """Type for (de)serialization."""
    format_error_template: str = (
        "Your last answer could not be run: {{error}}\n"
        "Call exactly one of the available tools through the tool-call interface (not as ``` blocks or XML text). "
        "When the task is solved, call `submit`."
    )
    """Shown to the model after a malformed answer (Jinja; `{{error}}` is what was wrong)."""

    _instructions: ClassVar[str] = "Explain your reasoning briefly, then call exactly one tool per answer."

    def parse(self, content: str | None, tool_calls: list[dict[str, Any]] | None, commands: list[Command]) -> ParsedOutput:
        if not tool_calls:
            raise FormatError("your answer has no tool call; every answer must call exactly one tool")
        if len(tool_calls) > 1:
            raise FormatError(f"your answer has {len(tool_calls)} tool calls; call exactly one tool per answer")
        function = tool_calls[0].get("function") or {}
        name = function.get("name") or ""
        arguments = function.get("arguments") or {}
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as exc:
                raise FormatError(f"the arguments of '{name}' are not valid JSON ({exc.msg} at character {exc.pos})") from None
        if not isinstance(arguments, dict):
            raise FormatError(f"the arguments of '{name}' must be a JSON object, got {type(arguments).__name__}")
        call = validate_call(name, arguments, commands, tool_calls[0].get("id"))
        return ParsedOutput(thought=content or "", call=call, action=_command_line(call, commands))

    def render(self, thought: str, call: ToolCall, commands: list[Command]) -> RenderedOutput:
        checked = validate_call(call.name, call.arguments, commands)
        native = {
            "id": call.id or _call_id(checked),
            "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(checked.arguments, ensure_ascii=False)},
        }
        return RenderedOutput(content=thought, tool_calls=[native])


_FUNCTION_OPEN = re.compile(r"<function=([^>\s]*)>")
_PARAMETER_OPEN = re.compile(r"\s*<parameter=([^>\s]*)>")
_PARAMETER_CLOSE = "</parameter>"
_AFTER_PARAMETER = re.compile(r"\s*(?:<parameter=([^>\s]*)>|\Z)")
_FUNCTION_CLOSE = "</function>"
_TWO_FUNCTIONS = re.compile(r"</function>\s*<function=")
_ENDS_AFTER_PARAMETERS = re.compile(r"(?:.*</parameter>)?\s*\Z", re.DOTALL)
"""An answer that ends right after its last parameter (or right after `<function=NAME>`): its call is complete."""


def _parameter_end(body: str, start: int, given: set[str]) -> int:
    """Where the value starting at `start` ends: the first `</parameter>` followed by the end of the call or by
    the opening tag of a parameter not given yet (a given one cannot come again, so that text is value)."""
    close = body.find(_PARAMETER_CLOSE, start)
    while close != -1:
        after = _AFTER_PARAMETER.match(body, close + len(_PARAMETER_CLOSE))
        if after is not None and after.group(1) not in given:
            return close
        close = body.find(_PARAMETER_CLOSE, close + 1)
    return -1


class XMLFunctionCallingParser(_Parser):
    """`<function=NAME><parameter=ARG>value</parameter>...</function>` in the text; the text around it is the thought.

    A value may span lines and contain any text, `</parameter>` included, unless that is directly followed by the
    end of the call or the opening tag of a parameter not given yet (the format's one ambiguity). One newline right after the opening tag and one right
    before the closing tag are layout, not value (so multi-line values render on lines of their own).
    """

    type: Literal["xml_function_calling"] = "xml_function_calling"
    """Type for (de)serialization."""
    format_error_template: str = (
        "Your last answer could not be run: {{error}}\n"
        "Write your reasoning, then exactly one function call in this format:\n"
        "<function=FUNCTION_NAME>\n<parameter=PARAMETER_NAME>value</parameter>\n</function>\n"
        "When the task is solved, call the `submit` function."
    )
    """Shown to the model after a malformed answer (Jinja; `{{error}}` is what was wrong)."""

    _instructions: ClassVar[str] = (
        "Every answer has two parts: first your reasoning about what to do next, then exactly ONE function call "
        "in this format (a value may span several lines):\n\n"
        "<function=FUNCTION_NAME>\n<parameter=PARAMETER_NAME>value</parameter>\n<parameter=OTHER_PARAMETER>\n"
        "a value\nover several lines\n</parameter>\n</function>\n\n"
        "Call one function per answer and wait for its output before the next. Run shell commands with the "
        "`bash` function; when the task is solved, call `submit`."
    )

    def parse(self, content: str | None, tool_calls: list[dict[str, Any]] | None, commands: list[Command]) -> ParsedOutput:
        text = content or ""
        opening = _FUNCTION_OPEN.search(text)
        if opening is None:
            raise FormatError("your answer has no function call; end it with exactly one <function=NAME>...</function> block")
        end = text.rfind(_FUNCTION_CLOSE)
        if end < opening.end() and _ENDS_AFTER_PARAMETERS.match(text, opening.end()):
            end = len(text)  # stopped at the `</function>` stop sequence, which servers strip (the paper's config)
        if end < opening.end():
            raise FormatError(f"the call of '{opening.group(1)}' is not closed with </function>")
        body = text[opening.end() : end]
        if _TWO_FUNCTIONS.search(body) or _FUNCTION_OPEN.search(text, end):
            raise FormatError("your answer has more than one function call; make exactly one call per answer")
        name = opening.group(1)
        command = _find_command(name, commands)
        arguments = self._parameters(command, body)
        call = validate_call(command.name, arguments, commands)
        thought = (text[: opening.start()] + text[end + len(_FUNCTION_CLOSE) :]).strip()
        return ParsedOutput(thought=thought, call=call, action=_command_line(call, commands))

    @staticmethod
    def _parameters(command: Command, body: str) -> dict[str, str]:
        values: dict[str, str] = {}
        position = 0
        while body[position:].strip():
            opening = _PARAMETER_OPEN.match(body, position)
            if opening is None:
                found = body[position:].strip()[:40]
                raise FormatError(f"expected <parameter=NAME> inside <function={command.name}>, found {found!r}")
            parameter = opening.group(1)
            close = _parameter_end(body, opening.end(), {*values, parameter})
            if close == -1:
                raise FormatError(f"parameter '{parameter}' of '{command.name}' is not closed with </parameter>")
            value = body[opening.end() : close]
            value = value[1:] if value.startswith("\n") else value
            values[parameter] = value[:-1] if value.endswith("\n") else value
            position = close + len(_PARAMETER_CLOSE)
        return values

    def render(self, thought: str, call: ToolCall, commands: list[Command]) -> RenderedOutput:
        checked = validate_call(call.name, call.arguments, commands)
        lines = [f"<function={call.name}>"]
        for name, value in checked.arguments.items():
            text = _text(value)
            text = f"\n{text}\n" if "\n" in text else text
            lines.append(f"<parameter={name}>{text}</parameter>")
        lines.append(_FUNCTION_CLOSE)
        block = "\n".join(lines)
        return RenderedOutput(content=f"{thought}\n\n{block}" if thought else block)


_FENCE = re.compile(r"(`{3,})(.*)")
_NOT_SHELL = {"python", "python3", "py", "pycon", "json", "diff", "patch"}
"""Info strings of fenced blocks that hold something other than a shell command: models paste code there."""
_BACKTICK_RUN = re.compile(r"`+")


class ThoughtActionParser(_Parser):
    """Reasoning, then the action as the LAST fenced code block (a fence of three or more backticks)."""

    type: Literal["thought_action"] = "thought_action"
    """Type for (de)serialization."""
    format_error_template: str = (
        "Your last answer could not be run: {{error}}\n"
        "Write your reasoning, then exactly one command in a fenced code block:\n```\ncommand\n```"
    )
    """Shown to the model after a malformed answer (Jinja; `{{error}}` is what was wrong)."""

    _instructions: ClassVar[str] = (
        "Every answer has two parts: first your reasoning about what to do next, then exactly ONE command in a "
        "fenced code block, like this:\n\n```\nls -la\n```\n\n"
        "Run one command per answer and wait for its output before the next. When the task is solved, run `submit`."
    )

    def parse(self, content: str | None, tool_calls: list[dict[str, Any]] | None, commands: list[Command]) -> ParsedOutput:
        lines = (content or "").split("\n")
        last_block: tuple[int, int] | None = None
        language = last_language = ""
        opened: tuple[int, int] | None = None
        for index, line in enumerate(lines):
            fence = _FENCE.fullmatch(line)
            if fence is None:
                continue
            ticks, info = len(fence.group(1)), fence.group(2)
            if opened is None and "`" not in info:
                opened, language = (index, ticks), info.strip().lower()
            elif opened is not None and ticks >= opened[1] and not info.strip():
                last_block, last_language, opened = (opened[0], index), language, None
        if last_block is None:
            problem = "its code block is not closed with ```" if opened else "it has no command in a ``` fenced code block"
            raise FormatError(f"your answer has no command: {problem}")
        if last_language in _NOT_SHELL:
            raise FormatError(
                f"your last code block is tagged `{last_language}`, so it was not run: the block must hold a shell "
                f"command, not {last_language} text. "
                "To run Python, write it to a file with a heredoc (cat > /tmp/check.py <<'EOF' ... EOF) and run "
                "`python /tmp/check.py`, or use `python -c '...'`; to change a file, use str_replace_editor"
            )
        start, end = last_block
        action = "\n".join(lines[start + 1 : end])
        thought = "\n".join(lines[:start] + lines[end + 1 :]).strip()
        return ParsedOutput(thought=thought, call=action_to_call(action, commands), action=action)

    def render(self, thought: str, call: ToolCall, commands: list[Command]) -> RenderedOutput:
        action = call_to_action(call, commands)
        longest = max((len(run) for run in _BACKTICK_RUN.findall(action)), default=0)
        fence = "`" * max(3, longest + 1)
        block = f"{fence}\n{action}\n{fence}"
        return RenderedOutput(content=f"{thought}\n\n{block}" if thought else block)


class XMLThoughtActionParser(_Parser):
    """Reasoning, then the action between the LAST `<command>` and `</command>` (SWE-agent's xml_thought_action)."""

    type: Literal["xml_thought_action"] = "xml_thought_action"
    """Type for (de)serialization."""
    format_error_template: str = (
        "Your last answer could not be run: {{error}}\n"
        "Write your reasoning, then exactly one command between tags:\n<command>\ncommand\n</command>"
    )
    """Shown to the model after a malformed answer (Jinja; `{{error}}` is what was wrong)."""

    _instructions: ClassVar[str] = (
        "Every answer has two parts: first your reasoning about what to do next, then exactly ONE command between "
        "tags, like this:\n\n<command>\nls -la\n</command>\n\n"
        "Run one command per answer and wait for its output before the next. When the task is solved, run `submit`."
    )

    def parse(self, content: str | None, tool_calls: list[dict[str, Any]] | None, commands: list[Command]) -> ParsedOutput:
        text = content or ""
        start, end = text.rfind("<command>"), text.rfind("</command>")
        if start == -1 or end < start:
            raise FormatError("your answer has no command: put it between <command> and </command>")
        action = text[start + len("<command>") : end].strip("\n")
        thought = (text[:start] + text[end + len("</command>") :]).strip()
        return ParsedOutput(thought=thought, call=action_to_call(action, commands), action=action)

    def render(self, thought: str, call: ToolCall, commands: list[Command]) -> RenderedOutput:
        block = f"<command>\n{call_to_action(call, commands)}\n</command>"
        return RenderedOutput(content=f"{thought}\n\n{block}" if thought else block)


ParseFunction = FunctionCallingParser | XMLFunctionCallingParser | ThoughtActionParser | XMLThoughtActionParser
ParseFunctionConfig = Annotated[ParseFunction, Field(discriminator="type")]
"""`agent.tools.parse_function` in YAML: `{type: function_calling | xml_function_calling | thought_action | xml_thought_action}`."""


# ---- converting answers and histories between formats -----------------------------------------------------------


def convert_output(
    content: str | None,
    tool_calls: list[dict[str, Any]] | None,
    from_parser: _Parser,
    to_parser: _Parser,
    commands: list[Command],
    call_id: str | None = None,
) -> RenderedOutput:
    """One answer re-written in another parse format; `call_id` names a native call made from text."""
    parsed = from_parser.parse(content, tool_calls, commands)
    call = parsed.call if parsed.call.id or call_id is None else replace(parsed.call, id=call_id)
    return to_parser.render(parsed.thought, call, commands)


def convert_messages(
    messages: list[dict[str, Any]], from_parser: _Parser, to_parser: _Parser, commands: list[Command]
) -> list[dict[str, Any]]:
    """A history re-written for another parse format.

    Assistant answers are re-rendered; the observation after each answer becomes a `tool` message carrying
    `tool_call_ids` for native function calling, or a `user` message for text parsers. Other keys of each
    message (agent, message_type, model_role, ...) are kept. Raises FormatError for an answer that
    `from_parser` cannot read.
    """
    native = isinstance(to_parser, FunctionCallingParser)
    converted: list[dict[str, Any]] = []
    last_call_id: str | None = None
    for message in messages:
        new = dict(message)
        previous_role = converted[-1]["role"] if converted else None
        if message["role"] == "assistant":
            rendered = convert_output(message.get("content"), message.get("tool_calls"), from_parser,
                                      to_parser, commands, call_id=f"call_{len(converted)}")
            new["content"] = rendered.content
            new.pop("tool_calls", None)
            if rendered.tool_calls:
                new["tool_calls"] = rendered.tool_calls
            last_call_id = rendered.tool_calls[0]["id"] if rendered.tool_calls else None
        elif message["role"] in ("tool", "user") and previous_role == "assistant":
            new.pop("tool_call_ids", None)
            new["role"] = "tool" if native else "user"
            if native:
                new["tool_call_ids"] = [last_call_id]
        converted.append(new)
    return converted
