"""A small HOCON reader: enough for vendor config files and ``EMQX_*`` env values.

EMQX parses every ``EMQX_*`` value as HOCON (``["a","b"]``, ``[{k=v}]``, ``8883``, ``true``),
and the static checks walk the keys of its example ``*.conf`` files. Neither needs the whole
HOCON spec: this reader covers objects (``{}`` with ``=``/``:``/no separator before ``{``),
dotted keys, arrays, quoted and triple-quoted strings, unquoted strings (with inner spaces,
as HOCON concatenates them), comments (``#``, ``//``) and leaves ``${...}`` substitutions and
``include`` directives as text. It does not merge objects across files or resolve substitutions.
"""

from __future__ import annotations

import json
from typing import Any

# Characters that end an unquoted string in HOCON. '@' is forbidden by the spec but EMQX's
# parser and its docs accept node names like emqx@host unquoted, so it is allowed here.
_FORBIDDEN = set('$"{}[]:=,+#`^?!*&\\\n')


class HoconError(ValueError):
    """The text is not HOCON this reader understands."""


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    # -- low level -------------------------------------------------------------------------
    def peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def skip(self, *, newlines: bool = True) -> None:
        """Skip blanks and comments (and newlines unless asked not to)."""
        while not self.at_end():
            ch = self.peek()
            if ch == "\n" and not newlines:
                return
            if ch in " \t\r\n\ufeff":
                self.pos += 1
            elif ch == "#" or self.peek(2) == "//":
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            else:
                return

    def error(self, message: str) -> HoconError:
        line = self.text.count("\n", 0, self.pos) + 1
        return HoconError(f"{message} at line {line}")

    # -- grammar ---------------------------------------------------------------------------
    def parse_root(self) -> Any:
        value: Any
        self.skip()
        if self.peek() == "{":
            value = self.parse_object()
        elif self.peek() == "[":
            value = self.parse_array()
        else:
            value = self.parse_members(closing=None)
        self.skip()
        if not self.at_end():
            raise self.error("unexpected text")
        return value

    def parse_object(self) -> dict[str, Any]:
        self.pos += 1  # '{'
        members = self.parse_members(closing="}")
        self.pos += 1  # '}'
        return members

    def parse_members(self, closing: str | None) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while True:
            self.skip()
            if self.at_end():
                if closing is not None:
                    raise self.error(f"missing '{closing}'")
                return result
            if closing is not None and self.peek() == closing:
                return result
            if self.peek() == ",":
                self.pos += 1
                continue
            if self.text.startswith("include", self.pos) and self._is_include():
                self._skip_line()
                continue
            path = self.parse_key()
            self.skip(newlines=False)
            if self.peek() in ("=", ":"):
                self.pos += 1
                self.skip()
            elif self.peek() != "{":
                raise self.error(f"expected '=', ':' or '{{' after key {'.'.join(path)!r}")
            value = self.parse_value()
            _assign(result, path, value)

    def _is_include(self) -> bool:
        rest = self.text[self.pos + len("include") :].lstrip(" \t")
        return rest.startswith(('"', "required(", "file(", "url(", "classpath("))

    def _skip_line(self) -> None:
        end = self.text.find("\n", self.pos)
        self.pos = len(self.text) if end < 0 else end

    def parse_key(self) -> list[str]:
        parts: list[str] = []
        current = ""
        while not self.at_end():
            ch = self.peek()
            if ch == '"':
                current += self.parse_quoted()
            elif ch == ".":
                parts.append(current)
                current = ""
                self.pos += 1
            elif ch in _FORBIDDEN or ch in " \t\r":
                break
            else:
                current += ch
                self.pos += 1
        parts.append(current)
        if not all(parts):
            raise self.error("empty key")
        return parts

    def parse_value(self) -> Any:
        self.skip(newlines=False)
        ch = self.peek()
        if ch == "{":
            return self.parse_object()
        if ch == "[":
            return self.parse_array()
        if self.peek(3) == '"""':
            return self.parse_triple()
        if ch == '"':
            return self.parse_quoted()
        return self.parse_unquoted()

    def parse_array(self) -> list[Any]:
        self.pos += 1  # '['
        items: list[Any] = []
        while True:
            self.skip()
            if self.at_end():
                raise self.error("missing ']'")
            if self.peek() == "]":
                self.pos += 1
                return items
            if self.peek() == ",":
                self.pos += 1
                continue
            items.append(self.parse_value())

    def parse_quoted(self) -> str:
        start = self.pos
        self.pos += 1
        while not self.at_end():
            ch = self.peek()
            if ch == "\\":
                self.pos += 2
                continue
            self.pos += 1
            if ch == '"':
                try:
                    return str(json.loads(self.text[start : self.pos]))
                except json.JSONDecodeError as exc:
                    raise self.error(f"bad string: {exc}") from exc
            if ch == "\n":
                break
        raise self.error("unterminated string")

    def parse_triple(self) -> str:
        end = self.text.find('"""', self.pos + 3)
        if end < 0:
            raise self.error('unterminated """ string')
        value = self.text[self.pos + 3 : end]
        self.pos = end + 3
        return value

    def parse_unquoted(self) -> Any:
        start = self.pos
        while not self.at_end():
            ch = self.peek()
            if ch == "$" and self.peek(2) == "${":
                end = self.text.find("}", self.pos)
                self.pos = len(self.text) if end < 0 else end + 1
                continue
            if ch in _FORBIDDEN or self.peek(2) == "//":
                break
            self.pos += 1
        raw = self.text[start : self.pos].strip()
        if not raw:
            raise self.error("missing value")
        return _scalar(raw)


def _scalar(raw: str) -> Any:
    if raw == "true":
        return True
    if raw == "false":
        return False
    if raw == "null":
        return None
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def _assign(target: dict[str, Any], path: list[str], value: Any) -> None:
    node = target
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    last = path[-1]
    # HOCON merges an object into an existing object with the same key.
    if isinstance(value, dict) and isinstance(node.get(last), dict):
        _merge(node[last], value)
    else:
        node[last] = value


def _merge(into: dict[str, Any], other: dict[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def loads(text: str) -> dict[str, Any]:
    """Parse a HOCON document (an object, braces optional)."""
    value = _Reader(text).parse_root()
    if not isinstance(value, dict):
        raise HoconError("a document must be an object")
    return value


def parse_value(text: str) -> Any:
    """Parse one HOCON value, as EMQX does with the value of an ``EMQX_*`` variable."""
    reader = _Reader(text)
    reader.skip()
    if reader.at_end():
        return ""
    value = reader.parse_value()
    reader.skip()
    if not reader.at_end():
        raise reader.error("unexpected text after value")
    return value


def key_paths(document: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of every leaf (and of every array, which is a leaf for config checks)."""
    paths: list[str] = []
    for key, value in document.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value:
            paths.extend(key_paths(value, path))
        else:
            paths.append(path)
    return paths
