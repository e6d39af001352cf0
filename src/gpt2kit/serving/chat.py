"""Chat messages -> one plain-text prompt, by a template file users can change
(chat_template.txt documents the format)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gpt2kit.errors import GPT2KitError

DEFAULT_TEMPLATE = Path(__file__).with_name("chat_template.txt")
ROLES = ("system", "user", "assistant")


class ChatTemplateError(GPT2KitError):
    """A chat template file that cannot be used, or messages it cannot render."""


@dataclass(frozen=True)
class ChatTemplate:
    roles: dict[str, str]  # role -> line with {content}
    reply: str  # what starts the model's turn
    stops: tuple[str, ...]  # where the model's turn ends

    @classmethod
    def from_file(cls, path: str | Path | None = None) -> ChatTemplate:
        path = Path(path) if path is not None else DEFAULT_TEMPLATE
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise ChatTemplateError(f"{path}: cannot read the chat template ({err})") from err
        roles, reply, stops = {}, None, []
        for number, line in enumerate(lines, 1):
            if not line.strip() or line.startswith("#"):
                continue
            key, sep, value = line.partition(": ")
            if not sep or key not in (*ROLES, "reply", "stop"):
                raise ChatTemplateError(f"{path}:{number}: expected `ROLE: text` with ROLE one of "
                                        f"{', '.join((*ROLES, 'reply', 'stop'))}, got {line!r}")
            value = value.replace("\\n", "\n")
            if key in ROLES:
                if "{content}" not in value:
                    raise ChatTemplateError(f"{path}:{number}: the {key} line needs {{content}}")
                roles[key] = value
            elif key == "reply":
                reply = value
            else:
                stops.append(value)
        missing = [r for r in ROLES if r not in roles] + (["reply"] if reply is None else [])
        if missing:
            raise ChatTemplateError(f"{path}: no line for {', '.join(missing)}")
        return cls(roles, reply, tuple(stops))

    def render(self, messages: Sequence[dict[str, str]], *, reply: bool = True) -> str:
        """The transcript of `messages` ({"role", "content"} each), ending with the reply line
        (without it: training text for a model that should learn the template)."""
        parts = []
        for message in messages:
            role = message.get("role")
            if role not in self.roles:
                raise ChatTemplateError(f"message role {role!r} is not one of {', '.join(self.roles)}")
            parts.append(self.roles[role].replace("{content}", message.get("content") or ""))
        return "".join(parts) + (self.reply if reply else "")
