"""Property tests of the value parsers users feed directly: MAC addresses and PCI addresses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvfmac.errors import MacError, PciAddressError
from pyvfmac.mac import format_mac, is_canonical, mac_bytes, parse_mac
from pyvfmac.types import PciAddress

unicast = st.binary(min_size=6, max_size=6).map(lambda b: bytes([b[0] & 0xFE]) + b[1:]).filter(
    lambda b: any(b))


def spellings(raw: bytes) -> list[str]:
    h = raw.hex()
    return [raw.hex(":"), raw.hex(":").upper(), raw.hex("-"), h, h.upper(),
            f"{h[0:4]}.{h[4:8]}.{h[8:12]}", ":".join(f"{b:x}" for b in raw), f"  {raw.hex(':')}\n"]


@given(unicast)
def test_every_spelling_parses_to_the_canonical_form(raw: bytes) -> None:
    canonical = raw.hex(":")
    for text in spellings(raw):
        assert parse_mac(text) == canonical
    assert is_canonical(canonical) and mac_bytes(canonical) == raw
    assert format_mac(raw + b"\0" * 26) == canonical


@given(st.binary(min_size=6, max_size=6).filter(lambda b: b[0] & 1))
def test_multicast_is_refused_in_every_spelling(raw: bytes) -> None:
    for text in spellings(raw):
        with pytest.raises(MacError, match="multicast|broadcast"):
            parse_mac(text)


@given(st.one_of(st.text(max_size=40), st.binary(max_size=20), st.integers(), st.none()))
def test_any_input_parses_or_raises_mac_error(text: object) -> None:
    """No input makes parse_mac raise anything but MacError (a ValueError naming the value)."""
    try:
        mac = parse_mac(text)  # type: ignore[arg-type]
    except MacError as exc:
        assert repr(text)[:20] in str(exc) or "not a string" in str(exc)
    else:
        assert is_canonical(mac)


addresses = st.builds(PciAddress, st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFF),
                      st.integers(0, 0x1F), st.integers(0, 7))


@given(addresses)
def test_pci_address_round_trips(a: PciAddress) -> None:
    assert PciAddress.parse(str(a)) == a
    assert PciAddress.parse(str(a).upper()) == a
    assert PciAddress.from_attrs(a.xml_attrs()) == a
    decimal = {"domain": str(a.domain), "bus": str(a.bus), "slot": str(a.slot),
               "function": str(a.function)}
    assert PciAddress.from_attrs(decimal) == a
    if a.domain == 0:
        assert PciAddress.parse(str(a)[5:]) == a


@given(st.text(max_size=30))
def test_any_text_parses_or_raises_pci_address_error(text: str) -> None:
    try:
        a = PciAddress.parse(text)
    except PciAddressError as exc:
        assert "PCI address" in str(exc)
    else:
        assert PciAddress.parse(str(a)) == a


@given(st.dictionaries(st.sampled_from(["domain", "bus", "slot", "function", "type"]),
                       st.text(max_size=8)))
def test_any_xml_attributes_parse_or_raise_pci_address_error(attrs: dict[str, str]) -> None:
    try:
        a = PciAddress.from_attrs(attrs, where="<address>")
    except PciAddressError as exc:
        assert str(exc).startswith("<address>")
    else:
        assert PciAddress.from_attrs(a.xml_attrs()) == a


@pytest.mark.parametrize("value", ["1_0", "\u0663", "0x1_0", "+1", "0x", " ", "1e1"])
def test_xml_coordinates_are_ascii_numbers_only(value: str) -> None:
    """Found by the property test: int() accepts underscores and non-ASCII digits; libvirt's
    attributes are 0x-hexadecimal or decimal ASCII."""
    with pytest.raises(PciAddressError, match="is not a number"):
        PciAddress.from_attrs({"bus": value, "slot": "0", "function": "0"})
