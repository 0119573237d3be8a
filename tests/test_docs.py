"""The documentation: the site builds with no warning and nothing fetched, and the facts the pages state
(config keys and defaults, commands and options, modules, event keys, README links) match the code.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, get_type_hints

import pytest

from device.events import EVENT_KEYS
from smartshelf.cli import build_parser
from smartshelf.core.config import Config
from smartshelf.installer.firstboot import FIRSTBOOT_KEYS, FIRSTBOOT_TABLE

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md"))
README = REPO / "README.md"


def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


# --- the site ---------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.slow
def test_mkdocs_build_strict_has_no_warning_and_loads_nothing_from_the_network(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(REPO / "mkdocs.yml"),
            "--site-dir",
            str(site),
        ],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output, output
    pages = sorted(site.glob("*.html"))
    assert {p.stem for p in PAGES} <= {p.stem for p in pages}
    # Only links may point off the machine: no stylesheet, script, font or image from elsewhere.
    remote = re.compile(r"<(?:script|img|link|iframe)\b[^>]*\b(?:src|href)=\"(?:https?:)?//", re.IGNORECASE)
    for html in pages:
        text = html.read_text(encoding="utf-8")
        assert not remote.search(text), f"{html.name} loads {remote.search(text).group(0)!r}"
        assert "fonts.googleapis" not in text and "fonts.gstatic" not in text, html.name


def test_every_page_is_in_the_nav() -> None:
    nav = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    for p in PAGES:
        assert f": {p.name}" in nav, f"{p.name} is not in mkdocs.yml's nav"


# --- configuration reference ------------------------------------------------------------------------

ROW = re.compile(r"^\|\s*`(\w+)\.(\w+)`\s*\|\s*([^|]*?)\s*\|", re.MULTILINE)


def documented_keys() -> dict[str, str]:
    """`section.key` -> its default cell, from the tables of docs/configuration.md."""
    return {f"{s}.{k}": default for s, k, default in ROW.findall(page("configuration.md"))}


def config_keys() -> dict[str, Any]:
    """`section.key` -> default, for every key of the config dataclasses."""
    keys: dict[str, Any] = {}
    hints = get_type_hints(Config)
    for section in dataclasses.fields(Config):
        if not dataclasses.is_dataclass(hints[section.name]):
            continue
        for f in dataclasses.fields(hints[section.name]):
            keys[f"{section.name}.{f.name}"] = f.default
    return keys


def test_configuration_page_lists_every_config_key_and_no_other() -> None:
    documented = set(documented_keys()) - {f"{FIRSTBOOT_TABLE}.{k}" for k in FIRSTBOOT_KEYS}
    code = set(config_keys())
    assert sorted(code - documented) == [], "config keys missing from docs/configuration.md"
    assert sorted(documented - code) == [], "docs/configuration.md lists keys the config does not have"
    assert "## `[slots]`" in page("configuration.md")


def test_configuration_page_shows_the_defaults() -> None:
    documented = documented_keys()
    for key, default in config_keys().items():
        cell = documented[key]
        if default is None:
            assert cell.startswith("unset"), f"{key}: default is unset, the page says {cell!r}"
            continue
        match = re.fullmatch(r"`([^`]*)`", cell)
        assert match, f"{key}: default cell {cell!r} is not a TOML value in backticks"
        value = tomllib.loads(f"v = {match.group(1)}")["v"]
        expected = str(default) if isinstance(default, Path) else default
        assert (value, type(value)) == (expected, type(expected)), f"{key}: page {value!r}, code {expected!r}"


def test_configuration_page_lists_the_firstboot_keys() -> None:
    documented = {k.split(".", 1)[1] for k in documented_keys() if k.startswith(f"{FIRSTBOOT_TABLE}.")}
    assert documented == set(FIRSTBOOT_KEYS)


# --- commands ---------------------------------------------------------------------------------------

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
SPAN = re.compile(r"`([^`\n]+)`")
WORD = re.compile(r"^[a-z][a-z0-9-]*$")
STOP = {"&&", "||", "|", ";", ">", ">>", "<", "#", "→"}


def code_texts(text: str) -> list[str]:
    """Every command-like piece of a page: each line of a fenced block (continuations joined, comments
    dropped) and each inline code span."""
    pieces: list[str] = []
    for block in FENCE.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            pieces.append(line.split(" #", 1)[0])
    pieces += SPAN.findall(FENCE.sub("", text))
    return pieces


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def options(*parsers: argparse.ArgumentParser) -> set[str]:
    return {opt for p in parsers for a in p._actions for opt in a.option_strings}


def clean(token: str) -> str:
    return token.replace("\\", "").strip("[](),.:`'\"")


def check_command(tokens: list[str], root: argparse.ArgumentParser) -> list[str]:
    """Problems with one `smartshelf ...` invocation: unknown command, action or option."""
    words = []
    for t in tokens:
        if t in STOP or t.startswith("#"):
            break
        words.append(t)
    opts = [clean(w).split("=", 1)[0] for w in words if clean(w).startswith("--")]
    plain = [clean(w) for w in words if not clean(w).startswith("-")]
    if not plain or not WORD.match(plain[0]):
        bad = [o for o in opts if o not in options(root)]
        return [f"unknown option {o}" for o in bad]
    commands = subcommands(root)
    if plain[0] not in commands:
        return [f"unknown command {plain[0]!r}"]
    command = commands[plain[0]]
    parsers = [root, command]
    actions = subcommands(command)
    if actions:
        # The action is the first word after the command that is not an option's value.
        after = [clean(w) for w in words[words.index(next(w for w in words if clean(w) == plain[0])) + 1 :]]
        for prev, word in zip([""] + after, after):
            if word.startswith("-") or (prev.startswith("--") and "=" not in prev):
                continue
            alternatives = [a for a in word.split("|") if a]
            if all(WORD.match(a) for a in alternatives):
                unknown = [a for a in alternatives if a not in actions]
                if unknown:
                    return [f"unknown action {unknown[0]!r} of {plain[0]!r}"]
                parsers += [actions[a] for a in alternatives]
            break
    known = options(*parsers)
    return [f"unknown option {o} for {' '.join(plain[:2])}" for o in opts if o not in known]


def invocations(text: str) -> list[list[str]]:
    found = []
    for piece in code_texts(text):
        try:
            tokens = shlex.split(piece, comments=True)
        except ValueError:  # an unbalanced quote in prose
            tokens = piece.split()
        for i, token in enumerate(tokens):
            if not (token == "smartshelf" or token.endswith("/bin/smartshelf")) or i + 1 >= len(tokens):
                continue
            rest = tokens[i + 1 :]
            # `sudo -u smartshelf smartshelf ...`, `cd smartshelf && ...`
            if rest[0] == "smartshelf" or rest[0] in STOP:
                continue
            if not (rest[0].startswith("-") or WORD.match(clean(rest[0]))):
                continue
            if i > 0 and tokens[i - 1] in ("-u", "--owner", "cd", "user", "clone"):
                continue
            found.append(rest)
    return found


def test_invocation_parser_catches_mistakes() -> None:
    root = build_parser()
    assert check_command(["demo", "--json"], root) == []
    assert check_command(["factors", "train|evaluate", "--out", "F"], root) == []
    assert check_command(["demo", "--jsn"], root)
    assert check_command(["factor", "train"], root)
    assert check_command(["terminal", "pair|unpair"], root)


@pytest.mark.parametrize("path", [README, *PAGES], ids=lambda p: p.name)
def test_every_smartshelf_command_and_option_in_the_docs_exists(path: Path) -> None:
    root = build_parser()
    problems = []
    for tokens in invocations(path.read_text(encoding="utf-8")):
        problems += [f"smartshelf {' '.join(tokens)}: {p}" for p in check_command(tokens, root)]
    assert problems == []


@pytest.mark.parametrize("path", [README, *PAGES], ids=lambda p: p.name)
def test_every_python_module_in_the_docs_exists(path: Path) -> None:
    modules = set()
    for piece in code_texts(path.read_text(encoding="utf-8")):
        modules |= set(re.findall(r"python3?\s+-m\s+([A-Za-z_][\w.]*)", piece))
    missing = [m for m in sorted(modules) if importlib.util.find_spec(m) is None]
    assert missing == []


PATH = re.compile(r"^(?:admin_web|device|docs|models|requirements|smartshelf|systemd|tests|tools)/[\w./-]*$")
DOTTED = re.compile(
    r"^(?:admin_web|device|smartshelf\.(?:cli|core|installer)|tools|models\.training)(?:\.\w+)+$"
)
#: Made by the development commands, git-ignored: named in the docs, absent from a fresh clone.
GENERATED = ("models/work",)


def resolves(dotted: str) -> bool:
    """A module, or an attribute of one (``device.inference.runtime.verify_model``)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        name = ".".join(parts[:i])
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            spec = None
        if spec is not None:
            obj: Any = importlib.import_module(name)
            for attr in parts[i:]:
                if not hasattr(obj, attr):
                    return False
                obj = getattr(obj, attr)
            return True
    return False


@pytest.mark.parametrize("path", [README, *PAGES], ids=lambda p: p.name)
def test_every_file_and_module_named_in_the_docs_exists(path: Path) -> None:
    missing = []
    for span in set(SPAN.findall(path.read_text(encoding="utf-8"))):
        name = span.removesuffix("()")
        is_file = PATH.match(name) and not name.startswith(GENERATED)
        if (is_file and not (REPO / name).exists()) or (DOTTED.match(name) and not resolves(name)):
            missing.append(name)
    assert sorted(missing) == []


# --- other facts ------------------------------------------------------------------------------------


def test_privacy_page_lists_exactly_the_event_keys() -> None:
    text = page("privacy.md")
    kept = text.split("## What is kept", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\|\s*`(\w+)`\s*\|", kept, re.MULTILINE))
    assert documented == set(EVENT_KEYS)


def test_readme_is_a_short_front_page_whose_links_resolve() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 120
    blocks = [b.strip() for b in FENCE.findall(text) if "smartshelf" in b or ".ci/run" in b]
    assert "./setup.sh && .venv/bin/smartshelf demo" in blocks
    assert "bash .ci/run" in blocks
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        assert (REPO / target.split("#", 1)[0]).exists(), f"README links to missing {target}"


def test_ci_runs_the_readme_test_command() -> None:
    assert (REPO / ".ci" / "run").exists()
    assert "./setup.sh --dev" in (REPO / ".ci" / "run").read_text(encoding="utf-8")


def test_the_model_card_keeps_the_markers_that_models_training_evaluate_writes_between() -> None:
    text = page("models.md")
    assert text.count("<!-- EVAL:BEGIN -->") == 1 and text.count("<!-- EVAL:END -->") == 1
    source = (REPO / "models" / "training" / "evaluate.py").read_text(encoding="utf-8")
    assert '"docs" / "models.md"' in source


def test_development_page_lists_exactly_the_test_markers() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"][
        "ini_options"
    ]
    names = {m.split(":", 1)[0].strip() for m in declared["markers"]}
    section = page("development.md").split("## Tests", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"^\|\s*`(\w+)`\s*\|", section, re.MULTILINE)) == names
