"""Subcommands of the `nasfer` CLI, one module each (found by discovery in `nasfer.cli`)."""
