"""HL7 v2 test messages: the public samples of tests/data/hl7v2/ (each folder's README names its source),
and the same messages with fields blanked, as feeds that omit them send them."""

from __future__ import annotations

import hl7

from tests.support.data import DATA, hl7_sample


def wikipedia_a01() -> str:
    """The ADT^A01 of Wikipedia's HL7 article: no PV1-19, the account number in PID-18."""
    return (DATA / "hl7v2" / "wikipedia" / "ADT_A01.txt").read_text()


def blanked(name: str, *fields: str) -> str:
    """An Emap sample (`hl7_sample`) with the fields named (`PV1-44`, `PV1-45`…) emptied, as ER7 with
    CR segment ends; python-hl7 edits the message, so nothing else of it changes."""
    message = hl7.parse(hl7_sample(name).replace("\n", "\r").strip())
    for name_ in fields:
        segment, number = name_.split("-")
        if message.segments(segment):
            message.assign_field("", segment, 1, int(number))
    return str(message)


def parsed(text: str) -> hl7.Message:
    return hl7.parse(text.replace("\r\n", "\r").replace("\n", "\r").strip())
