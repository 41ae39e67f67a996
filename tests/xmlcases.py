"""Documents and helpers the XML tests share (device forms, error checks, random values)."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from pyvfmac.domain import DeviceDocument
from pyvfmac.errors import InputError, XmlError
from pyvfmac.types import PciAddress

Parser = Callable[..., object]
DATA = Path(__file__).parent / "data" / "xml"
MAC = "52:54:00:6d:90:02"
ADDR = PciAddress(0, 6, 2, 0)


def etree(text: str) -> ET.Element:
    return ET.fromstring(text)


def expect_error(xml: str, *needles: str, parse: Parser = DeviceDocument.parse) -> str:
    with pytest.raises(XmlError) as info:
        parse(xml, source="t.xml")
    message = str(info.value)
    assert isinstance(info.value, InputError)
    assert message.startswith("t.xml"), message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


def hd(inner: str, attrs: str = "mode='subsystem' type='pci'", mac: str = MAC) -> str:
    return f"<hostdev {attrs}>{inner}<mac address='{mac}'/></hostdev>"


def domain_text() -> str:
    return (DATA / "domain-mixed.xml").read_text()


def random_addr(rng: random.Random) -> PciAddress:
    return PciAddress(rng.randrange(0x10000), rng.randrange(0x100), rng.randrange(0x20),
                      rng.randrange(8))
