"""The schema command: the JSON Schema of goal specs, for editors that complete and check YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ga_sync.cli.base import app, check_output, write_output
from ga_sync.errors import OutputError

SCHEMA_FILE = "spec.schema.json"


def schema_text() -> str:
    """The packaged schema, byte for byte (read through importlib so it works from a wheel)."""
    from importlib.resources import files
    return files("ga_sync").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


@app.command()
def schema(
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="Write the schema to this file instead of standard output."),
) -> None:
    """Print the JSON Schema (draft 2020-12) of goal specs, so editors complete and check them.

    A YAML language server (VS Code's YAML extension by Red Hat, Neovim, Helix, ...) reads the
    schema named on a spec's first line, as a path relative to the spec or a URL. It then
    offers keys, fixed words and currency codes, shows what each key means, and marks most
    mistakes as you type. `ga-sync validate` stays the full check: a schema cannot see other
    files (`extends`, a property claimed twice) or duplicate events.

    \b
    Examples:
      ga-sync schema -o goal_specs/spec.schema.json
      then start each spec in goal_specs/ with the line
      # yaml-language-server: $schema=spec.schema.json
    """
    text = schema_text()
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        check_output(output)
        write_output(output, text)
    except OutputError as e:
        raise OutputError(f"cannot write the schema: {e}") from None
    typer.echo(f"wrote {output}", err=True)
