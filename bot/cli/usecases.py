"""`meshbot templates` and `meshbot new`: list and render use-case templates."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.descriptor.errors import InputErrors

# The templates (Jinja, JSON Schema) are imported by the commands that use them: every meshbot command registers these.
if TYPE_CHECKING:
    from templates.usecases import DataProductFolder, RenderedFile, UseCaseTemplate

EXIT_OK, EXIT_INPUT = 0, 2
# Used for the first commit only when git has no identity configured.
FALLBACK_IDENTITY = {"NAME": "meshbot", "EMAIL": "meshbot@localhost"}
# Variables that would point git at another repository than the folder it runs in.
_REPOSITORY_VARIABLES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
                         "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE", "GIT_PREFIX")
GIT_TIMEOUT_SECONDS = 60


def register(commands: Any) -> None:
    """Add `templates` and `new` to the meshbot command line."""
    listing = commands.add_parser("templates", help="list the use-case templates and their parameters")
    listing.add_argument("--format", choices=("text", "json"), default="text")
    _add_templates_option(listing)
    listing.set_defaults(handler=_templates_command)

    new = commands.add_parser(
        "new",
        help="render a use-case template into a folder: a new data product, or a component of the data "
        "product in that folder",
    )
    new.add_argument("template", metavar="TEMPLATE", help="the template's id or folder name (`meshbot templates`)")
    new.add_argument("dir", metavar="DIR",
                     help="where to render; a component template run on a data product folder adds the component "
                     "there")
    new.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="assignments",
                     help="a parameter value, read as YAML (`--set columns='[{name: id, dataType: TEXT}]'`); "
                     "repeatable; overrides --example")
    new.add_argument("--example", action="store_true",
                     help="start from the template's example parameters")
    _add_templates_option(new)
    new.set_defaults(handler=_new_command)


def _add_templates_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--templates", metavar="DIR", action="append", default=[],
                        help="a folder of use-case templates (or one template folder) added to the built-in ones "
                        "(repeatable)")


def _templates_command(arguments: argparse.Namespace) -> int:
    from templates.usecases import load_templates

    templates = load_templates(arguments.templates)
    if arguments.format == "json":
        sys.stdout.write(json.dumps([template.as_json() for template in templates], indent=2) + "\n")
    else:
        sys.stdout.write(templates_text(templates))
    return EXIT_OK


def templates_text(templates: Sequence[UseCaseTemplate]) -> str:
    """The templates for a terminal: id, kind, description and each parameter's title and default."""
    blocks = []
    for template in templates:
        lines = [
            f"{template.name}  {template.id}",
            f"  kind: {template.kind}; infrastructure template: {template.infrastructure_template_id or 'none'}",
            textwrap.fill(template.description, width=100, initial_indent="  ", subsequent_indent="  "),
            "  parameters (* required, = default):",
        ]
        required = set(template.required)
        labels = {}
        for name, schema in template.properties.items():
            if name in required:
                labels[name] = f"{name} *"
            elif isinstance(schema, dict) and "default" in schema:
                labels[name] = f"{name} = {json.dumps(schema['default'])}"
            else:
                labels[name] = name
        width = max((len(label) for label in labels.values()), default=0)
        for name, schema in template.properties.items():
            title = schema.get("title", "") if isinstance(schema, dict) else ""
            lines.append(f"    {labels[name]:<{width}}  {title}".rstrip())
        lines.append(f"  try: meshbot new {template.name} DIR --example")
        blocks.append("\n".join(lines))
    footer = ("`meshbot new TEMPLATE DIR --example` renders a template with its example parameters;\n"
              "`--set KEY=VALUE` sets one parameter (and overrides the example).")
    return "\n\n".join([*blocks, footer]) + "\n"


def _new_command(arguments: argparse.Namespace) -> int:
    from templates.usecases import (
        derive_parameters,
        destination_problems,
        find_template,
        load_templates,
        parse_assignments,
        read_data_product,
        render,
        resolve_parameters,
        write_files,
    )

    template = find_template(load_templates(arguments.templates), arguments.template)
    destination = Path(arguments.dir)
    given = parse_assignments(template, arguments.assignments)
    data_product: DataProductFolder | None = None
    derived: dict[str, Any] = {}
    if template.kind != "dataproduct" and destination.is_dir():
        data_product = read_data_product(destination)
        if data_product is not None:
            derived = derive_parameters(template, destination, data_product, given)
    parameters = resolve_parameters(template, given, arguments.example, derived)
    files = render(template, parameters)
    existing, problems = destination_problems(destination, files)
    if problems:
        raise InputErrors(problems)
    if existing:
        shown = "\n".join(f"  {os.path.join(arguments.dir, path)}" for path in existing)
        print(f"meshbot: refusing to overwrite {len(existing)} existing file{'s' if len(existing) != 1 else ''}; "
              f"nothing was written:\n{shown}", file=sys.stderr)
        return EXIT_INPUT
    git = shutil.which("git")
    inside_repository = git is not None and _inside_repository(git, destination)
    write_files(destination, files)
    _report_written(arguments.dir, template, files, data_product)
    if data_product is not None:
        # A component added to an existing data product: committing it is the team's call, not ours.
        pass
    elif git is None:
        print(f"git: not found, so {arguments.dir} is not under version control; run `git init` there once git is "
              "installed")
    elif inside_repository:
        print(f"git: {arguments.dir} is inside a git repository; commit the new files there")
    else:
        _initialise_repository(git, destination, arguments.dir, template, files)
    print(_next_step(arguments.dir, template, data_product))
    return EXIT_OK


def _report_written(
    shown_dir: str, template: UseCaseTemplate, files: Sequence[RenderedFile], data_product: DataProductFolder | None
) -> None:
    target = f" to the data product {data_product.system}" if data_product is not None else ""
    print(f"Rendered {template.name} ({template.id}) into {shown_dir}{target}:")
    for file in files:
        print(f"  wrote {os.path.join(shown_dir, file.path)}")


def _next_step(shown_dir: str, template: UseCaseTemplate, data_product: DataProductFolder | None) -> str:
    folder = shlex.quote(shown_dir)
    if template.kind == "dataproduct":
        return (f"Next: add components (`meshbot templates` lists them), e.g. "
                f"`meshbot new sqlite-storage {folder} --example`, then `meshbot check {folder}`")
    if data_product is None:
        return (f"Next: {shown_dir} holds no data product; render this component into a data product folder, or "
                "list its catalog-info.yaml in a Location of the data product, then `meshbot check` the data product")
    return f"Next: meshbot check {folder}"


def _git_environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key not in _REPOSITORY_VARIABLES}


def _run_git(git: str, arguments: Sequence[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([git, *arguments], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=GIT_TIMEOUT_SECONDS, check=False)


def _inside_repository(git: str, destination: Path) -> bool:
    """Whether destination (or, before it exists, its nearest existing parent) is inside a git repository."""
    folder = destination.absolute()
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    try:
        completed = _run_git(git, ["rev-parse", "--is-inside-work-tree"], folder, _git_environment())
    except (OSError, subprocess.SubprocessError):
        return False
    return completed.returncode == 0


def _initialise_repository(
    git: str, destination: Path, shown_dir: str, template: UseCaseTemplate, files: Sequence[RenderedFile]
) -> None:
    """`git init` and a first commit of the rendered files; problems are reported, the files stay."""
    env = _git_environment()
    try:
        steps = [["-c", "init.defaultBranch=main", "init", "-q"], ["add", "--", *(file.path for file in files)]]
        for step in steps:
            completed = _run_git(git, step, destination, env)
            if completed.returncode != 0:
                raise _GitFailed(step, completed.stderr)
        env = _with_identity(git, destination, env)
        message = f"Start from the use-case template {template.id}\n\nRendered by `meshbot new {template.name}`."
        step = ["commit", "-q", "-m", message]
        completed = _run_git(git, step, destination, env)
        if completed.returncode != 0:
            raise _GitFailed(step, completed.stderr)
    except _GitFailed as failed:
        print(f"meshbot: `git {failed.step}` failed in {shown_dir}: {failed.detail}; the files are written, "
              "commit them yourself", file=sys.stderr)
        return
    except (OSError, subprocess.SubprocessError) as error:
        print(f"meshbot: git failed in {shown_dir}: {error}; the files are written, commit them yourself",
              file=sys.stderr)
        return
    print(f"git: initialised a repository in {shown_dir} with a first commit")


class _GitFailed(Exception):
    def __init__(self, step: Sequence[str], stderr: str) -> None:
        super().__init__(stderr)
        self.step = " ".join(step[2:] if step[:1] == ["-c"] else step)
        self.detail = stderr.strip().splitlines()[-1] if stderr.strip() else "no message"


def _with_identity(git: str, destination: Path, env: dict[str, str]) -> dict[str, str]:
    """env, with a fixed author and committer for whatever identity git has not been given."""
    env = dict(env)
    for part in ("NAME", "EMAIL"):
        configured = _run_git(git, ["config", f"user.{part.lower()}"], destination, env)
        if configured.returncode == 0 and configured.stdout.strip():
            continue
        for role in ("AUTHOR", "COMMITTER"):
            env.setdefault(f"GIT_{role}_{part}", FALLBACK_IDENTITY[part])
    return env
