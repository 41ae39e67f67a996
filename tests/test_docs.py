"""The docs hold: README.md and docs/*.md checked against the code.

- Every ``vfmac ...`` command line in a fenced code block parses with the real parser
  (:func:`pyvfmac.cli.parser.build_parser`), and the values the commands check before looking at
  the host are valid: ``vfmac set``'s settings words (:func:`pyvfmac.cli.commands.parse_set_words`),
  ``vfmac attach --pci/--network``'s options (:func:`pyvfmac.attach.vf_request`). Placeholders
  (PF, VF, FILE, NAME, ...) are replaced by sample values first.
- The README's command-line summary (the fenced block under "## The command line") names every
  subcommand of the parser and no other; each option it names exists for its subcommand.
- Every TOML example (a ```toml block, and contrib/vfmac.toml.example) loads as a config
  (:func:`pyvfmac.apply.config.parse_config`: parse and validate only, no host).
- Every relative link points at a file that exists (and, with ``#anchor`` into a Markdown file,
  at one of its headings).

Nothing here needs root or a host with VFs.
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyvfmac.apply.config import parse_config, read_toml
from pyvfmac.attach import vf_request
from pyvfmac.cli.commands import onoff_word, parse_set_words
from pyvfmac.cli.parser import build_parser
from pyvfmac.errors import VfmacError

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SUMMARY_HEADING = "## The command line"

# placeholder word -> a valid sample value (whole words only; see _substitute)
SAMPLES = {
    "PF": "eth0",
    "VF": "3",
    "FILE": "guest.xml",
    "OUT": "live.xml",
    "NAME": "net1",
    "CONFIG": "/etc/pyvfmac/vfmac.toml",
    "ADDR": "0000:03:10.2",
    "PCI": "0000:03:10.2",
    "MAC": "52:54:00:12:34:56",
    "M": "52:54:00:12:34:56",
    "N": "10",
    "Q": "3",
    "S": "0.5",
    "DIR": "/srv/pyvfmac",
}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the first line inside the fence, 1-based
    lang: str
    heading: str  # the nearest heading above it
    text: str

    def where(self, offset: int = 0) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line + offset}"


def fenced_blocks(path: Path) -> Iterator[Block]:
    heading = ""
    lines = path.read_text().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#") and not line.startswith("#!"):
            heading = line.strip()
        m = re.match(r"^\s*```(\S*)\s*$", line)
        if m:
            start, lang, body = i, m.group(1), []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            yield Block(path, start + 2, lang, heading, "\n".join(body))
        i += 1


def all_blocks() -> list[Block]:
    return [b for path in DOCS for b in fenced_blocks(path)]


def is_summary(block: Block) -> bool:
    return block.path.name == "README.md" and block.heading == SUMMARY_HEADING


def _substitute(word: str) -> str:
    return SAMPLES.get(word, word)


def command_lines(block: Block) -> Iterator[tuple[str, list[str]]]:
    """(where, argv after `vfmac`) of each vfmac command in a block, one a line: comments
    dropped, commands split at && and ;."""
    for offset, raw in enumerate(block.text.split("\n")):
        try:
            words = shlex.split(raw, comments=True)
        except ValueError:
            continue  # not shell (JSON, XML)
        cmd: list[str] = []
        redirect = False
        for word in [*words, "&&"]:
            if word in ("&&", ";", "||", "|"):
                if cmd and cmd[0].rpartition("/")[2] == "vfmac":  # /opt/pyvfmac/bin/vfmac too
                    yield block.where(offset), [_substitute(w) for w in cmd[1:]]
                cmd = []
            elif word in (">", ">>", "<", "2>"):
                redirect = True  # the shell's, not the command's: its target is dropped too
            elif redirect:
                redirect = False
            else:
                cmd.append(word)


EXAMPLES = [(where, argv) for b in all_blocks() if not is_summary(b)
            for where, argv in command_lines(b)]


def test_there_are_examples() -> None:
    """The collectors find what they are meant to (a broken collector checks nothing)."""
    assert len(EXAMPLES) >= 10
    assert {argv[0] for _, argv in EXAMPLES if not argv[0].startswith("-")} >= {
        "attach", "detach", "apply", "watch", "net-define", "net-start"}
    assert len(TOMLS) >= 1
    assert sum(1 for b in all_blocks() if is_summary(b)) == 1


def _parser() -> argparse.ArgumentParser:
    return build_parser()


@pytest.mark.parametrize(("where", "argv"), EXAMPLES,
                         ids=[f"{w}:{' '.join(a)[:40]}" for w, a in EXAMPLES])
def test_command_example_parses(where: str, argv: list[str]) -> None:
    line = shlex.join(["vfmac", *argv])
    try:
        args = _parser().parse_args(argv)
    except (VfmacError, SystemExit) as exc:
        pytest.fail(f"{where}: {line!r} does not parse: {exc}")
    try:
        if args.command == "set":
            parse_set_words(args.pf, args.vf, [w for w in args.settings if w != "--json"])
        elif args.command == "attach" and not args.file:  # cmd_attach's checks, host untouched
            assert args.mac and args.owner, "--mac and --owner are needed without a FILE"
            vf_request(pci=args.pci, network=args.network, mac=args.mac, vlan=args.vlan,
                       qos=args.qos, managed=args.managed,
                       spoofchk=onoff_word("--spoofchk", args.spoofchk) if args.spoofchk else None,
                       trust=onoff_word("--trust", args.trust) if args.trust else None)
    except (VfmacError, AssertionError) as exc:
        pytest.fail(f"{where}: {line!r}: {exc}")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("the parser has no subcommands")


def summary_entries() -> list[tuple[str, str]]:
    """(subcommand, its text) for each subcommand the summary block names: the word after
    `vfmac ` at a line's start, and after ` | ` on such a line; continuation lines (indented)
    belong to the last one named."""
    (block,) = [b for b in all_blocks() if is_summary(b)]
    entries: list[tuple[str, str]] = []
    for line in block.text.split("\n"):
        if line.startswith("vfmac "):
            for part in re.split(r" \| (?=[a-z])", line[len("vfmac "):]):
                name, _, text = part.partition(" ")
                entries.append((name, text))
        elif line.startswith(" ") and entries:
            name, text = entries[-1]
            entries[-1] = (name, text + " " + line)
    return entries


def test_summary_names_every_subcommand() -> None:
    named = {name for name, _ in summary_entries()}
    subcommands = set(_subparsers(_parser()))
    assert named - subcommands == set(), "the summary names subcommands the parser lacks"
    assert subcommands - named == set(), "subcommands missing from the README's summary"


def test_summary_options_exist() -> None:
    subs = _subparsers(_parser())
    for name, text in summary_entries():
        # the summary's own notes name options of the same subcommand ("--pf: only ...")
        options = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", text))
        known = {s for a in subs[name]._actions for s in a.option_strings}
        assert options <= known, f"vfmac {name}: {sorted(options - known)} not in the parser"


# ----------------------------------------------------------------------------- TOML

TOMLS = [b for b in all_blocks() if b.lang == "toml"]


@pytest.mark.parametrize("block", TOMLS, ids=[b.where() for b in TOMLS])
def test_toml_example_loads(block: Block, tmp_path: Path) -> None:
    path = tmp_path / "vfmac.toml"
    path.write_text(block.text)
    parse_config(read_toml(str(path)), path=f"{block.where()}")


def test_contrib_config_example_loads() -> None:
    path = str(ROOT / "contrib" / "vfmac.toml.example")
    cfg = parse_config(read_toml(path), path=path)
    assert cfg.pfs


# ----------------------------------------------------------------------------- links

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.lstrip("#").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    in_code = False
    anchors = set()
    for line in path.read_text().split("\n"):
        if line.lstrip().startswith("```"):
            in_code = not in_code
        elif not in_code and re.match(r"^#{1,6} ", line):
            anchors.add(_slug(line))
    return anchors


def relative_links() -> list[tuple[Path, str]]:
    found = []
    for path in DOCS:
        text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
        for target in _LINK.findall(text):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                found.append((path, target))
    return found


LINKS = relative_links()


def test_there_are_links() -> None:
    assert len(LINKS) >= 20


@pytest.mark.parametrize(("path", "target"), LINKS,
                         ids=[f"{p.relative_to(ROOT)}->{t}" for p, t in LINKS])
def test_relative_link_exists(path: Path, target: str) -> None:
    file_part, _, anchor = target.partition("#")
    dest = (path.parent / file_part).resolve() if file_part else path
    assert dest.exists(), f"{path.relative_to(ROOT)}: link to {target}: no such file"
    if anchor and dest.suffix == ".md":
        assert anchor in _anchors(dest), (
            f"{path.relative_to(ROOT)}: link to {target}: no heading with that anchor")
