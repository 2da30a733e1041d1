"""CLI commands that live in their own modules (registered in cli.LAZY_COMMANDS)."""
