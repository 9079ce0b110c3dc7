"""ER7 text as the platform reads and writes it: a field's value as sent, its escape sequences resolved
within bounds, and text written into an ACK with the message's own delimiters (docs/interop.md).

Pure. python-hl7 parses the message, but its `unescape` is never applied to a field a sender wrote: it
repeats `\\.sp<n>\\` / `\\.in<n>\\` n times with no bound (`\\.sp999999999\\` is a gigabyte), raises on
`\\.spX\\`, and logs the whole field (a patient's data) when it fails. Here a field is read as sent and
only these escapes are resolved (HL7 v2.5 §2.7): the delimiters `\\F\\ \\S\\ \\T\\ \\R\\ \\E\\`, hex
`\\Xhh…\\` (its output is shorter than its text), and the formatting ones — `\\.br\\`, `\\.sp<n>\\`,
`\\.in<n>\\`, `\\.ti<n>\\`, `\\.sk<n>\\`, `\\.ce\\` a space whatever `n`; `\\.fi\\`, `\\.nf\\`, `\\H\\`,
`\\N\\` nothing. Anything else (a character set switch, a locally defined escape, an unterminated one) is
`Unreadable`: the mapping answers AE 102 naming the field.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import hl7
import hl7.containers
import hl7.util

# python-hl7 logs raw field content (patients' data) at warning/error level from these two loggers, which
# it names by file path; nothing of a message may reach a log.
for _module in (hl7.util, hl7.containers):
    logging.getLogger(_module.__file__).setLevel(logging.CRITICAL + 1)

_FORMATTING = re.compile(r"\.(?:(br|ce)|(sp|in|ti|sk)[+-]?\d*|(fi|nf))")


class Unreadable(Exception):
    """A field python-hl7 cannot hand over, or with an escape sequence the platform does not read."""


@dataclass(frozen=True, slots=True)
class Delimiters:
    """MSH-1 and MSH-2: the field separator, then component, repetition, escape and subcomponent."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @classmethod
    def of(cls, message: hl7.Message) -> Delimiters:
        separators = str(message.separators)  # segment, field, repetition, component, subcomponent
        return cls(separators[1], separators[3], separators[2], str(message.esc), separators[4])

    @property
    def encoding_characters(self) -> str:
        return self.component + self.repetition + self.escape + self.subcomponent

    def escaped(self, text: str) -> str:
        """Text made safe inside one field (HL7 v2.5 §2.7.1); line breaks become spaces."""
        escapes = {
            self.escape: "E",
            self.field: "F",
            self.component: "S",
            self.subcomponent: "T",
            self.repetition: "R",
        }
        out = []
        for c in text:
            if c in escapes:
                out.append(f"{self.escape}{escapes[c]}{self.escape}")
            else:
                out.append(" " if c in "\r\n" else c)
        return "".join(out)


DEFAULT = Delimiters()
"""HL7's recommended delimiters `|^~\\&`."""


def header_of(text: str) -> tuple[Delimiters, str]:
    """The delimiters and `MSH-10` of a text python-hl7 could not parse, read from its first segment as
    far as it goes (defaults and '' where it does not): its ACK still echoes what can be read."""
    if not text.startswith("MSH") or len(text) < 8 or text[3] in "\r\n":
        return DEFAULT, ""
    first = text.split("\r", 1)[0]
    fields = first.split(text[3])
    characters = fields[1] if len(fields) > 1 else ""
    if len(characters) < 4 or len(set(characters[:4] + text[3])) < 5:  # five distinct delimiters
        return DEFAULT, ""
    delimiters = Delimiters(text[3], *characters[:4])
    return delimiters, fields[9].strip() if len(fields) > 9 else ""


def raw(message: hl7.Message, accessor: str) -> str:
    """A leaf of the message as sent ('' when the message has no such segment, field or component),
    following python-hl7's rule for paths longer or shorter than the tree (`Segment.extract_field`),
    without unescaping it."""
    key = hl7.Accessor.parse_key(accessor)
    try:
        segment = message.segments(key.segment)(key.segment_num or 1)
    except KeyError:
        return ""
    field_number = key.field_num or 1
    if field_number >= len(segment):
        return ""
    node = segment(field_number)
    for number in (key.repeat_num, key.component_num, key.subcomponent_num):
        if isinstance(node, str):
            break  # a leaf before the path's end: the path's remaining positions are taken as 1
        if (number or 1) > len(node):
            return ""
        node = node(number or 1)
    while not isinstance(node, str):  # deeper than the path: its first child, down to a leaf
        if not node:
            return ""
        node = node(1)
    return node


def unescaped(value: str, delimiters: Delimiters) -> str:
    """`value` with its escape sequences resolved (the module's list); raises Unreadable otherwise."""
    if delimiters.escape not in value:
        return value
    parts = value.split(delimiters.escape)
    if len(parts) % 2 == 0:
        raise Unreadable("an escape sequence is not terminated")
    out = []
    for number, part in enumerate(parts):
        out.append(part if number % 2 == 0 else _escape_sequence(part, delimiters))
    return "".join(out)


def _escape_sequence(sequence: str, delimiters: Delimiters) -> str:
    delimiter = {
        "F": delimiters.field,
        "S": delimiters.component,
        "T": delimiters.subcomponent,
        "R": delimiters.repetition,
        "E": delimiters.escape,
        "H": "",
        "N": "",
    }.get(sequence)
    if delimiter is not None:
        return delimiter
    if sequence.startswith("X"):
        return _hex(sequence[1:])
    formatting = _FORMATTING.fullmatch(sequence)
    if formatting is None:
        raise Unreadable("an escape sequence the platform does not read")
    return "" if formatting[3] else " "


def _hex(digits: str) -> str:
    try:
        data = bytes.fromhex(digits)
    except ValueError:
        raise Unreadable("a hex escape sequence that is not pairs of hex digits") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")
