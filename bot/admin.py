"""Admin commands (placeholder until the admin module lands)."""

from telegram.ext import Application

ADMIN_COMMANDS: list[tuple[str, str]] = []


def register(app: Application) -> None:
    """Register the admin handlers on ``app``."""
