"""`python -m orchestrion` = the `orchestrion` command."""

from orchestrion.cli import app

app(prog_name="orchestrion")
