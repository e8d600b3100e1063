"""``bastion guard``: what the guards do to a text (``scan``) and how well they do it on
labelled data (``eval``)."""

from __future__ import annotations

import click


@click.group()
def guard() -> None:
    """Guards: scan a text with a policy, evaluate scanners on labelled JSONL."""


def register(main: click.Group) -> None:
    main.add_command(guard)
