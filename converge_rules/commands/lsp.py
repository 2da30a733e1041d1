"""`converge lsp`: the language server over stdio (see converge_rules.lsp and docs/editors.md)."""

from __future__ import annotations

import click

EXAMPLE = "Example (Neovim): vim.lsp.start({ name = 'converge', cmd = { 'converge', 'lsp' } })"


@click.command(epilog=EXAMPLE)
@click.option("--stdio", is_flag=True, help="Talk LSP over stdin/stdout (the default and only transport).")
def lsp(stdio: bool) -> None:
    """Run the Converge language server: diagnostics as you type, hover, go to
    definition, references, completion, formatting, rename, outline and test lenses.

    Editors start it themselves; see docs/editors.md. Needs the `lsp` extra
    (pip install 'converge-rules[lsp]').
    """
    try:
        from ..lsp.server import main
    except ImportError as err:
        raise click.UsageError(f"the language server needs pygls and lsprotocol ({err.name} is missing): "
                               "pip install 'converge-rules[lsp]'")
    main()
