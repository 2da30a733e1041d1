// Starts `converge lsp` (stdio) for .cvg files. The server does the work: this
// file only tells VS Code how to run it and runs the tests a code lens names.
"use strict";

const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const config = vscode.workspace.getConfiguration("converge");
  const [command, ...args] = config.get("server.command", ["converge", "lsp"]);
  const serverOptions = { command, args, options: { env: process.env } };
  const clientOptions = {
    documentSelector: [{ scheme: "file", language: "converge" }, { scheme: "untitled", language: "converge" }],
    initializationOptions: { debounce: config.get("diagnostics.debounce", 0.25) },
  };
  client = new LanguageClient("converge", "Converge language server", serverOptions, clientOptions);
  context.subscriptions.push(
    vscode.commands.registerCommand("converge.restartServer", async () => {
      await client.restart();
    })
  );
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
