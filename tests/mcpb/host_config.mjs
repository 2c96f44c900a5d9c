// How an MCPB host turns a bundle's manifest and a user's settings into the
// command it runs: @anthropic-ai/mcpb's own getMcpConfigForManifest (the
// library of the CLI scripts/mcpb.sh installs), so that the test starts the
// server as a host would. Run with scripts/mcpb.sh --node.
//
// Stdin: {"manifest": {...}, "extensionPath": DIR, "userConfig": {...},
// "systemDirs": {"HOME": ..., ...}}. Stdout: {"command", "args", "env"}, or
// null when the host would not start the server (a required field missing).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const dir = process.env.L402_MCPB_DIR;
if (!dir) {
  console.error("host_config.mjs: set L402_MCPB_DIR to the install dir of scripts/mcpb.sh");
  process.exit(2);
}
const mcpb = await import(
  pathToFileURL(join(dir, "node_modules", "@anthropic-ai", "mcpb", "dist", "index.js")).href
);
const input = JSON.parse(readFileSync(0, "utf8"));
const config = await mcpb.getMcpConfigForManifest({
  manifest: input.manifest,
  extensionPath: input.extensionPath,
  systemDirs: input.systemDirs ?? {},
  userConfig: input.userConfig ?? {},
  pathSeparator: "/",
  logger: { log: console.error, warn: console.error, error: console.error },
});
process.stdout.write(JSON.stringify(config ?? null) + "\n");
