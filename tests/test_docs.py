"""The documentation cannot rot.

* Every ```python block of ``docs/**/*.md`` and ``README.md`` runs: the blocks of one page in
  order, in one namespace, in a temporary working directory. A ```text title="Output" block
  right after a python block is that block's expected standard output.
* A comment on the line before a block changes how it runs:
  ``<!-- docs-test: skip REASON -->`` skips it (the reason is required);
  ``<!-- docs-test: requires-dataset NAME -->`` links ``NAME`` from the data sets folder into
  the working directory, or, when the data set is absent, skips this block and the rest of the
  page; ``<!-- docs-test: requires-module NAME -->`` skips this block and the rest of the page
  when the module ``NAME`` (an optional extra's) cannot be imported.
* The hook reference shows each hook's exact signature, the CLI reference each command's
  options, the config reference each built-in augmentation's parameters and defaults.
* ``mkdocs build --strict`` passes (where mkdocs is installed).
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import io
import json
import os
import re
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import attrs
import click
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = (*sorted(DOCS.rglob("*.md")), REPO / "README.md")

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*?)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<kind>[\w-]+)\s*(?P<argument>.*?)\s*-->\s*$")
_MARKER_KINDS = ("skip", "requires-dataset", "requires-module")
_OUTPUT_INFO = 'text title="Output"'


def datasets_dir() -> Path:
    """``$AUGKIT_DATASETS``, else ``shared/datasets`` beside the repository."""
    return Path(os.environ.get("AUGKIT_DATASETS") or REPO.parent / "shared" / "datasets")


class DocsError(Exception):
    """A page is malformed for the docs test (marker, output block)."""


class SnippetFailure(AssertionError):
    """A snippet raised, or printed something other than its Output block."""


@attrs.frozen
class Block:
    """One fenced code block: ``line`` is the 1-based line of its opening fence."""

    info: str
    code: str
    line: int
    marker: tuple[str, str] | None
    follows_block: bool
    """Nothing but blank lines separates it from the previous block."""

    @property
    def language(self) -> str:
        return self.info.split(maxsplit=1)[0] if self.info else ""


@attrs.frozen
class Snippet:
    """A python block with its expected output (None: not checked)."""

    block: Block
    output: str | None


def parse_blocks(text: str, page: str) -> list[Block]:
    """The fenced blocks of a markdown text, dedented by their fence's indentation."""
    lines = text.splitlines()
    blocks: list[Block] = []
    previous = ""  # last non-blank line before the current position
    after_block = False
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            if lines[i].strip():
                previous, after_block = lines[i], False
            i += 1
            continue
        indent, fence, info = opening["indent"], opening["fence"], opening["info"]
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            closing = _FENCE.match(lines[j])
            if (
                closing is not None
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"]
            ):
                break
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        else:
            raise DocsError(f"{page}:{i + 1}: code block is never closed")
        blocks.append(
            Block(
                info=info,
                code="\n".join(body) + "\n",
                line=i + 1,
                marker=_marker(previous, page, i + 1),
                follows_block=after_block,
            )
        )
        previous, after_block = lines[j], True
        i = j + 1
    return blocks


def _marker(line: str, page: str, number: int) -> tuple[str, str] | None:
    match = _MARKER.match(line)
    if match is None:
        if "docs-test" in line:
            raise DocsError(f"{page}:{number - 1}: malformed docs-test marker {line.strip()!r}")
        return None
    kind, argument = match["kind"], match["argument"]
    if kind not in _MARKER_KINDS:
        raise DocsError(
            f"{page}:{number - 1}: unknown docs-test marker {kind!r}; expected one of "
            f"{', '.join(_MARKER_KINDS)}"
        )
    if not argument:
        what = {"skip": "a reason", "requires-dataset": "a data set name", "requires-module": "a module name"}[kind]
        raise DocsError(f"{page}:{number - 1}: docs-test marker {kind!r} needs {what}")
    return kind, argument


def snippets(text: str, page: str) -> list[Snippet]:
    """The python blocks of a page, each with the Output block that follows it, if any."""
    blocks = parse_blocks(text, page)
    out: list[Snippet] = []
    for index, block in enumerate(blocks):
        if block.info == _OUTPUT_INFO:
            before = blocks[index - 1] if index else None
            if before is None or before.language != "python" or not block.follows_block:
                raise DocsError(f"{page}:{block.line}: an Output block must follow a python block")
            if before.marker is not None and before.marker[0] == "skip":
                raise DocsError(f"{page}:{block.line}: Output of a skipped block cannot be checked")
            continue
        if block.language != "python":
            if block.marker is not None:
                raise DocsError(f"{page}:{block.line}: docs-test markers apply to python blocks only")
            continue
        following = blocks[index + 1] if index + 1 < len(blocks) else None
        output = (
            following.code
            if following is not None and following.info == _OUTPUT_INFO and following.follows_block
            else None
        )
        out.append(Snippet(block, output))
    return out


@attrs.frozen
class PageRun:
    """What `run_page` did not run: blocks skipped by a marker (with reasons), and the data set
    or module whose absence stopped the page (None when every block could run)."""

    skipped: tuple[str, ...]
    missing_data: str | None


def run_page(page: Path, *, workdir: Path, datasets: Path) -> PageRun:
    """Run the python blocks of `page` in `workdir`, linking data sets from `datasets`.

    Raises `SnippetFailure` naming the page and line of a block that raises or prints other
    than its Output block, and `DocsError` for a malformed page.
    """
    name = _relative(page)
    module = types.ModuleType("docs_page_" + re.sub(r"\W", "_", name))
    module.__file__ = str(workdir / "snippet.py")
    sys.modules[module.__name__] = module
    skipped: list[str] = []
    try:
        with contextlib.chdir(workdir):
            for snippet in snippets(page.read_text(encoding="utf-8"), name):
                block, where = snippet.block, f"{name}:{snippet.block.line}"
                if block.marker is not None and block.marker[0] == "skip":
                    skipped.append(f"{where}: {block.marker[1]}")
                    continue
                absent_module = block.marker is not None and block.marker[0] == "requires-module" and importlib.util.find_spec(block.marker[1]) is None
                if absent_module:
                    return PageRun(tuple(skipped), f"{where} and after need module {block.marker[1]!r}, which is absent")
                if block.marker is not None and block.marker[0] == "requires-dataset":
                    source = datasets / block.marker[1]
                    if not source.exists():
                        missing = f"{where} and after need data set {str(source)!r}, which is absent"
                        return PageRun(tuple(skipped), missing)
                    link = workdir / block.marker[1]
                    if not link.exists():
                        link.symlink_to(source, target_is_directory=source.is_dir())
                _run(snippet, module, page, where)
    finally:
        del sys.modules[module.__name__]
    return PageRun(tuple(skipped), None)


def _run(snippet: Snippet, module: types.ModuleType, page: Path, where: str) -> None:
    block = snippet.block
    # Leading newlines make traceback line numbers those of the page.
    code = compile("\n" * block.line + block.code, str(page), "exec")
    stdout = io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout):
            exec(code, module.__dict__)  # noqa: S102 - running the docs' code is the point
    except BaseException as error:
        raise SnippetFailure(
            f"{where}: snippet raised {type(error).__name__}: {error}\n--- snippet ---\n{block.code}"
        ) from error
    if snippet.output is not None and _lines(stdout.getvalue()) != _lines(snippet.output):
        raise SnippetFailure(
            f"{where}: snippet printed\n{stdout.getvalue()}--- but its Output block says ---\n"
            f"{snippet.output}"
        )


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip("\n").splitlines()]


def _relative(page: Path) -> str:
    try:
        return str(page.relative_to(REPO))
    except ValueError:
        return str(page)


def _pages_with_python() -> list[Path]:
    return [p for p in PAGES if p.exists() and snippets(p.read_text(encoding="utf-8"), _relative(p))]


# -- the pages ----------------------------------------------------------------------------------
@pytest.mark.parametrize("page", _pages_with_python(), ids=_relative)
def test_page_snippets_run(page: Path, tmp_path: Path) -> None:
    run = run_page(page, workdir=tmp_path, datasets=datasets_dir())
    if run.missing_data is not None:
        pytest.skip(run.missing_data)


@pytest.mark.parametrize("page", [p for p in PAGES if p.exists()], ids=_relative)
def test_page_markers_and_outputs_are_well_formed(page: Path) -> None:
    """`snippets` raises `DocsError` for a malformed marker or an Output block without code."""
    snippets(page.read_text(encoding="utf-8"), _relative(page))


def test_docs_have_runnable_snippets() -> None:
    assert len(_pages_with_python()) >= 8


# -- the runner itself --------------------------------------------------------------------------
def _copy_of_index_with(tmp_path: Path, extra: str) -> Path:
    """A copy of docs/index.md (whose snippets work) with `extra` appended."""
    page = tmp_path / "page.md"
    page.write_text((DOCS / "index.md").read_text(encoding="utf-8") + extra, encoding="utf-8")
    return page


def test_runner_fails_on_a_broken_snippet(tmp_path: Path) -> None:
    page = _copy_of_index_with(tmp_path, "\n```python\nundefined_name + 1\n```\n")
    broken_line = page.read_text().splitlines().index("undefined_name + 1") + 1
    with pytest.raises(SnippetFailure, match=rf"page.md:{broken_line - 1}: snippet raised NameError") as info:
        run_page(page, workdir=tmp_path, datasets=tmp_path)
    assert info.value.__cause__.__traceback__ is not None
    frames = [f for f in _frames(info.value.__cause__.__traceback__) if f[0] == str(page)]
    assert frames == [(str(page), broken_line)]


def _frames(tb: types.TracebackType | None) -> Iterator[tuple[str, int]]:
    while tb is not None:
        yield tb.tb_frame.f_code.co_filename, tb.tb_lineno
        tb = tb.tb_next


def test_runner_fails_on_wrong_output(tmp_path: Path) -> None:
    page = _copy_of_index_with(tmp_path, '\n```python\nprint("a")\n```\n```text title="Output"\nb\n```\n')
    with pytest.raises(SnippetFailure, match="but its Output block says"):
        run_page(page, workdir=tmp_path, datasets=tmp_path)


def test_runner_shares_one_namespace_per_page_and_checks_output(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nx = 2\n```\n\ntext\n\n```python\nprint(x * 21)\n```\n\n"
        '```text title="Output"\n42\n```\n'
    )
    assert run_page(page, workdir=tmp_path, datasets=tmp_path) == PageRun((), None)


def test_runner_runs_in_the_working_directory(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text('```python\nopen("made.txt", "w").close()\n```\n')
    work = tmp_path / "work"
    work.mkdir()
    run_page(page, workdir=work, datasets=tmp_path)
    assert (work / "made.txt").exists()


def test_skip_marker_needs_a_reason_and_skips(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- docs-test: skip -->\n```python\nraise SystemExit\n```\n")
    with pytest.raises(DocsError, match="needs a reason"):
        run_page(page, workdir=tmp_path, datasets=tmp_path)
    page.write_text("<!-- docs-test: skip needs a GPU -->\n```python\nraise SystemExit\n```\n")
    run = run_page(page, workdir=tmp_path, datasets=tmp_path)
    assert len(run.skipped) == 1 and run.skipped[0].endswith("page.md:2: needs a GPU")
    assert run.missing_data is None


def test_unknown_marker_is_an_error(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- docs-test: skipp typo -->\n```python\npass\n```\n")
    with pytest.raises(DocsError, match="unknown docs-test marker 'skipp'"):
        run_page(page, workdir=tmp_path, datasets=tmp_path)


def test_dangling_output_block_is_an_error(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text('```bash\necho hi\n```\n```text title="Output"\nhi\n```\n')
    with pytest.raises(DocsError, match="must follow a python block"):
        run_page(page, workdir=tmp_path, datasets=tmp_path)


def test_missing_dataset_skips_the_rest_of_the_page(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nran = True\n```\n"
        "<!-- docs-test: requires-dataset nowhere -->\n```python\nraise SystemExit\n```\n"
        "```python\nraise SystemExit\n```\n"
    )
    run = run_page(page, workdir=tmp_path, datasets=tmp_path / "none")
    assert run.skipped == ()
    assert run.missing_data is not None and "page.md:5 and after" in run.missing_data
    assert "nowhere" in run.missing_data


def test_missing_module_skips_the_rest_of_the_page(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- docs-test: requires-module json -->\n```python\nran = True\n```\n"
        "<!-- docs-test: requires-module no_such_module_anywhere -->\n```python\nraise SystemExit\n```\n"
    )
    run = run_page(page, workdir=tmp_path, datasets=tmp_path)
    assert run.missing_data is not None and "page.md:6 and after need module 'no_such_module_anywhere'" in run.missing_data


def test_present_dataset_is_linked_into_the_working_directory(tmp_path: Path) -> None:
    data = tmp_path / "data" / "tiny"
    data.mkdir(parents=True)
    (data / "f.txt").write_text("hello")
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- docs-test: requires-dataset tiny -->\n"
        '```python\nprint(open("tiny/f.txt").read())\n```\n```text title="Output"\nhello\n```\n'
    )
    work = tmp_path / "work"
    work.mkdir()
    assert run_page(page, workdir=work, datasets=tmp_path / "data") == PageRun((), None)


_LINE_BREAKS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_BODY = st.lists(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="`~" + _LINE_BREAKS), max_size=20),
    max_size=4,
)


@settings(max_examples=50, deadline=None)
@given(bodies=st.lists(_BODY, min_size=1, max_size=4), indent=st.sampled_from(["", "    "]))
def test_parser_finds_each_block_with_its_line(bodies: list[list[str]], indent: str) -> None:
    lines: list[str] = []
    expected = []
    for body in bodies:
        lines.append("Some prose.")
        expected.append(("\n".join(body) + "\n", len(lines) + 1))
        lines += [f"{indent}```python", *(f"{indent}{line}" for line in body), f"{indent}```"]
    found = [(b.code, b.line) for b in parse_blocks("\n".join(lines), "page.md")]
    assert found == expected


# -- references that must match the code ------------------------------------------------------
class _Annotation(str):
    """Renders a string annotation without quotes in `inspect.Signature`'s text."""

    def __repr__(self) -> str:
        return str(self)


def rendered_signature(function: types.FunctionType) -> str:
    """``name(param: Type, ...) -> Return`` as written in the source (string annotations)."""
    signature = inspect.signature(function)
    parameters = [
        p.replace(annotation=_Annotation(p.annotation)) if isinstance(p.annotation, str) else p
        for p in signature.parameters.values()
    ]
    returns = signature.return_annotation
    signature = signature.replace(
        parameters=parameters,
        return_annotation=_Annotation(returns) if isinstance(returns, str) else returns,
    )
    return f"{function.__name__}{signature}"


def test_every_hook_has_its_exact_signature_in_the_hook_reference() -> None:
    from augkit import hookspecs

    text = (DOCS / "reference" / "hooks.md").read_text(encoding="utf-8")
    code = "".join(b.code for b in parse_blocks(text, "hooks.md") if b.language == "python")
    hooks = [
        f for _, f in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(f, "augkit_spec")
    ]
    assert hooks, "augkit.hookspecs defines no hook"
    for hook in hooks:
        assert f"def {rendered_signature(hook)}:" in code, (
            f"docs/reference/hooks.md lacks a python block with 'def {rendered_signature(hook)}:'"
        )
        assert re.search(rf"^## `{hook.__name__}`$", text, re.MULTILINE), (
            f"docs/reference/hooks.md lacks the heading '## `{hook.__name__}`'"
        )
    documented = set(re.findall(r"^## `(augkit_\w+)`$", text, re.MULTILINE))
    stale = documented - {h.__name__ for h in hooks}
    assert not stale, f"docs/reference/hooks.md documents hooks augkit lacks: {sorted(stale)}"


def _section(text: str, heading: str, page: str) -> str:
    """The text under the markdown `heading` line, up to the next heading of its level or above."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.splitlines()
    if heading not in lines:
        raise AssertionError(f"{page} lacks the heading {heading!r}")
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if re.match(rf"^#{{1,{level}}} ", lines[i])), len(lines))
    return "\n".join(lines[start:end])


def _long_options(command: click.Command) -> set[str]:
    return {o for p in command.params if isinstance(p, click.Option) for o in p.opts if o.startswith("--")}


def _check_documented(command: click.Command, section: str, what: str) -> None:
    options = _long_options(command)
    for option in options:
        assert f"`{option}" in section, f"docs/reference/cli.md, {what}: {option} is undocumented"
    for argument in (p.name.upper() for p in command.params if isinstance(p, click.Argument)):
        assert argument in section, f"docs/reference/cli.md, {what}: {argument} is undocumented"
    stale = set(re.findall(r"`(--[a-z][a-z-]*)", section)) - options - {"--help"}
    assert not stale, f"docs/reference/cli.md, {what}: documents unknown options {sorted(stale)}"


def test_cli_reference_lists_every_command_and_option() -> None:
    from augkit.cli import main

    text = (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")
    _check_documented(main, text.split("\n## ", 1)[0], "augkit")
    context = click.Context(main)
    for name in main.list_commands(context):
        section = _section(text, f"## `augkit {name}`", "docs/reference/cli.md")
        command = main.get_command(context, name)
        if isinstance(command, click.Group):  # each subcommand under its own ### heading
            for sub in command.list_commands(context):
                heading = f"### `augkit {name} {sub}`"
                _check_documented(command.get_command(context, sub), _section(section, heading, "docs/reference/cli.md"), f"augkit {name} {sub}")
            section = section.split("\n### ", 1)[0]
        _check_documented(command, section, f"augkit {name}")


_PARAMETER_ROW = r"^\| `(?P<name>\w+)` \|[^|\n]*\|(?P<default>[^|\n]*)\|"
"""A row ``| `name` | type | default | meaning |`` of a parameter table."""


def _default_cell(field: attrs.Attribute) -> str:
    if field.default is attrs.NOTHING:
        return "required"
    return f"`{json.dumps(field.default)}`"


def test_config_reference_lists_every_builtin_parameter_with_its_default() -> None:
    from augkit.registry import BUILTIN_DISTRIBUTION, load_plugins

    text = (DOCS / "reference" / "config.md").read_text(encoding="utf-8")
    registry = load_plugins(autoload=False)
    builtins = [
        r
        for r in registry.registrations()
        if r.kind == "augmentation" and r.distribution == BUILTIN_DISTRIBUTION
    ]
    assert builtins
    for registration in builtins:
        section = _section(text, f"### `{registration.name}`", "docs/reference/config.md")
        where = f"docs/reference/config.md, {registration.name}"
        rows = {
            match["name"]: match["default"].strip()
            for match in re.finditer(_PARAMETER_ROW, section, re.MULTILINE)
        }
        fields = {f.alias: f for f in attrs.fields(registration.factory) if f.init}
        for alias, field in fields.items():
            assert alias in rows, f"{where}: parameter {alias!r} is undocumented"
            assert rows[alias] == _default_cell(field), (
                f"{where}: parameter {alias!r} has default {_default_cell(field)}, the page says {rows[alias]}"
            )
        stale = set(rows) - set(fields)
        assert not stale, f"{where}: unknown parameters {sorted(stale)}"


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
    pytest.importorskip("mkdocstrings", reason="the docs extra is not installed: pip install -e '.[docs]'")
    pytest.importorskip("material", reason="the docs extra is not installed: pip install -e '.[docs]'")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
