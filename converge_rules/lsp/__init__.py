"""The Converge language server (``converge lsp``): pygls over stdio.

``server`` wires the protocol; ``analysis`` compiles and indexes a file with the
editor's unsaved buffers; one module per feature (``hover``, ``navigation``,
``completion``, ``symbols``, ``lenses``); ``convert`` maps compiler structures to
LSP types; ``builtins`` holds the builtins' editor docs.
"""
