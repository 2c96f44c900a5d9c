#!/usr/bin/env python3
"""Checks the files that register l402-mcp with agents. Standard library only.

- every JSON file in examples/ and .claude-plugin/ parses;
- the MCP client configs (Claude Desktop, Cursor) and the Claude Code plugin
  and marketplace manifests have the keys their clients require, name
  `l402-mcp serve`, and set only environment variables l402-mcp reads;
- `${VAR:-default}` placeholders in the plugin are well formed and have a
  default (Claude Code passes an unset `${VAR}` through as literal text);
- every skills/*/SKILL.md has YAML frontmatter whose `name` follows the
  Agent Skills rules (1-64 of a-z, 0-9 and single inner hyphens) and
  matches its directory, and whose `description` is 1-1024 characters;
- the plugin's icon is a square PNG of 512 to 2048 px under 2 MB at the
  `./` path plugin.json's `icon` names (what Claude Code's plugin directory
  accepts; `claude plugin validate` checks only that one is there);
- examples/agent.py compiles; examples/claude-code.sh parses (bash -n);
- the README's links into examples/ and skills/ exist.

Usage: python3 tests/interop/check_registration.py [REPO_ROOT]
Prints one line per check and a closing "N passed, N failed" line; exits 1
when anything failed.
"""

from __future__ import annotations

import json
import py_compile
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]

# The environment variables l402-mcp reads (src/cli/settings.rs, the
# gateway's flags, and serve's auth token).
KNOWN_ENV = {
    "L402_CONFIG", "L402_SESSION", "L402_MAX_COST_SATS", "L402_MAX_FEE_SATS",
    "L402_BUDGET_SATS", "L402_PAYMENTS_PER_MINUTE", "L402_APPROVE_ABOVE_SATS",
    "L402_DAILY_CAP_SATS", "L402_ALLOW_PRIVATE", "L402_DEV_NODE", "L402_DATA_DIR",
    "L402_MAX_BODY_BYTES", "L402_REQUEST_TIMEOUT_SECS", "L402_PAYMENT_TIMEOUT_SECS",
    "L402_MCP_AUTH_TOKEN",
}
NUMERIC_ENV = {
    "L402_MAX_COST_SATS", "L402_MAX_FEE_SATS", "L402_BUDGET_SATS",
    "L402_PAYMENTS_PER_MINUTE", "L402_APPROVE_ABOVE_SATS", "L402_DAILY_CAP_SATS",
    "L402_MAX_BODY_BYTES", "L402_REQUEST_TIMEOUT_SECS", "L402_PAYMENT_TIMEOUT_SECS",
}
SKILL_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
PLUGIN_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
PLACEHOLDER_BODY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(:-(.*))?$")

results: list[tuple[bool, str]] = []


def check(ok: bool, what: str) -> bool:
    results.append((ok, what))
    print(f"{'ok  ' if ok else 'FAIL'}  {what}")
    return ok


def rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


# --- JSON -------------------------------------------------------------------


def load_json(path: Path):
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        check(False, f"{rel(path)} parses as JSON: {e}")
        return None
    check(True, f"{rel(path)} parses as JSON")
    return data


def expand(value: str, where: str, plugin: bool) -> str | None:
    """`value` with each ${VAR:-default} replaced by its default; None if malformed."""
    def sub(m: re.Match) -> str:
        body = PLACEHOLDER_BODY.match(m.group(1))
        if not body:
            raise ValueError(f"malformed placeholder ${{{m.group(1)}}}")
        name, _, default = body.groups()
        if name == "CLAUDE_PLUGIN_ROOT":
            return "/plugin-root"
        if not plugin:
            raise ValueError(f"placeholder ${{{m.group(1)}}} in a config whose client does not expand it")
        if default is None:
            raise ValueError(f"${{{name}}} has no default; an unset variable would reach the server as literal text")
        # `${VAR:-}`: Claude Code expands an unset VAR to the empty default,
        # which serve reads as unset.
        return default
    try:
        return PLACEHOLDER.sub(sub, value)
    except ValueError as e:
        check(False, f"{where}: {e}")
        return None


def check_server(path: Path, name: str, server, plugin: bool = False) -> None:
    where = f"{rel(path)}: mcpServers.{name}"
    if not check(isinstance(server, dict), f"{where} is an object"):
        return
    if "url" in server:  # an HTTP entry
        check(isinstance(server["url"], str) and re.match(r"^https?://", server["url"]) is not None,
              f"{where}.url is an http(s) URL")
        return
    command, args, env = server.get("command"), server.get("args", []), server.get("env", {})
    check(isinstance(command, str) and bool(command), f"{where}.command is a non-empty string")
    if isinstance(command, str):
        expanded = expand(command, f"{where}.command", plugin)
        if expanded is not None:
            check(Path(expanded).name == "l402-mcp", f"{where}.command runs l402-mcp (got {expanded!r})")
    ok_args = isinstance(args, list) and all(isinstance(a, str) for a in args)
    check(ok_args, f"{where}.args is a list of strings")
    if ok_args:
        check(bool(args) and args[0] == "serve", f"{where}.args starts with 'serve'")
        for a in args:
            expand(a, f"{where}.args", plugin)
    if "type" in server:
        check(server["type"] == "stdio", f"{where}.type is 'stdio' for a command entry")
    if not check(isinstance(env, dict), f"{where}.env is an object"):
        return
    for key, value in env.items():
        check(key in KNOWN_ENV, f"{where}.env.{key} is a variable l402-mcp reads")
        if not check(isinstance(value, str), f"{where}.env.{key} is a string"):
            continue
        expanded = expand(value, f"{where}.env.{key}", plugin)
        if expanded is None:
            continue
        if key in NUMERIC_ENV:
            check(expanded.isdigit(), f"{where}.env.{key} is a whole number of sats/units (got {expanded!r})")
        if key == "L402_DEV_NODE":
            # Empty is unset (serve reads "" as no dev node).
            check(expanded == "" or re.match(r"^https?://[^/\s]+/?$", expanded) is not None,
                  f"{where}.env.L402_DEV_NODE is a base URL or empty (got {expanded!r})")


def check_client_config(path: Path) -> None:
    data = load_json(path)
    if data is None:
        return
    servers = data.get("mcpServers") if isinstance(data, dict) else None
    if check(isinstance(servers, dict) and bool(servers), f"{rel(path)} has a non-empty mcpServers object"):
        for name, server in servers.items():
            check_server(path, name, server)


def png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, or None if it is no PNG."""
    head = path.read_bytes()[:24]
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def check_icon(dir_: Path, icon) -> None:
    where = f"{rel(dir_ / 'plugin.json')}: icon"
    if not check(isinstance(icon, str) and icon.startswith("./") and icon.endswith(".png"),
                 f"{where} is a ./ path to a PNG (got {icon!r})"):
        return
    path = dir_.parent / icon
    if not check(path.is_file(), f"{where} {icon} exists"):
        return
    size = png_size(path)
    check(size is not None and size[0] == size[1] and 512 <= size[0] <= 2048,
          f"{where} {icon} is a square PNG of 512 to 2048 px (got {size})")
    check(path.stat().st_size < 2 * 1024 * 1024, f"{where} {icon} is under 2 MB")


def check_plugin(dir_: Path) -> str | None:
    path = dir_ / "plugin.json"
    data = load_json(path)
    if not isinstance(data, dict):
        return None
    name = data.get("name")
    check(isinstance(name, str) and PLUGIN_NAME.match(name) is not None,
          f"{rel(path)}: name is kebab-case (got {name!r})")
    for key in ("description", "version"):
        check(isinstance(data.get(key), str) and bool(data.get(key)), f"{rel(path)}: {key} is set")
    if isinstance(data.get("version"), str):
        check(re.match(r"^\d+\.\d+\.\d+", data["version"]) is not None, f"{rel(path)}: version is semver")
    if "author" in data:
        check(isinstance(data["author"], dict) and isinstance(data["author"].get("name"), str),
              f"{rel(path)}: author is an object with a name")
    check_icon(dir_, data.get("icon"))
    servers = data.get("mcpServers")
    if isinstance(servers, str):  # a path to a .mcp.json
        check(servers.startswith("./") and (dir_.parent / servers).is_file(),
              f"{rel(path)}: mcpServers names an existing ./ file")
    elif check(isinstance(servers, dict) and bool(servers), f"{rel(path)}: mcpServers registers a server"):
        for sname, server in servers.items():
            check_server(path, sname, server, plugin=True)
    return name if isinstance(name, str) else None


def check_marketplace(dir_: Path, plugin_name: str | None) -> None:
    path = dir_ / "marketplace.json"
    data = load_json(path)
    if not isinstance(data, dict):
        return
    check(isinstance(data.get("name"), str) and re.match(r"^[A-Za-z0-9._-]+$", data["name"]) is not None,
          f"{rel(path)}: name is set (letters, digits, '.', '_', '-')")
    owner = data.get("owner")
    check(isinstance(owner, dict) and isinstance(owner.get("name"), str) and bool(owner["name"]),
          f"{rel(path)}: owner.name is set")
    plugins = data.get("plugins")
    if not check(isinstance(plugins, list) and bool(plugins), f"{rel(path)}: plugins is a non-empty list"):
        return
    for i, entry in enumerate(plugins):
        where = f"{rel(path)}: plugins[{i}]"
        if not check(isinstance(entry, dict), f"{where} is an object"):
            continue
        check(isinstance(entry.get("name"), str) and PLUGIN_NAME.match(entry["name"]) is not None,
              f"{where}.name is kebab-case")
        source = entry.get("source")
        if isinstance(source, str):
            if not check(source.startswith("./"), f"{where}.source is relative and starts with './'"):
                continue
            root = (dir_.parent / source).resolve()
            check(root == ROOT or ROOT in root.parents, f"{where}.source stays inside the repository")
            manifest = root / ".claude-plugin" / "plugin.json"
            if check(manifest.is_file(), f"{where}.source holds .claude-plugin/plugin.json"):
                if root == ROOT and plugin_name:
                    check(entry.get("name") == plugin_name,
                          f"{where}.name matches plugin.json's name ({plugin_name})")
        else:
            check(isinstance(source, dict) and "source" in source, f"{where}.source is a path or a source object")


# --- skills -----------------------------------------------------------------


def parse_frontmatter(text: str) -> tuple[dict[str, str], str]:
    """A strict subset of YAML: top-level `key: value` lines (plain, or single
    or double quoted), `>`/`|` block scalars, and nested blocks skipped.
    Raises ValueError where real YAML would read something else."""
    if not text.startswith("---\n"):
        raise ValueError("does not start with a '---' line")
    end = text.find("\n---\n", 3)
    if end < 0:
        raise ValueError("frontmatter is not closed by a '---' line")
    lines, body = text[4:end].split("\n"), text[end + 5:]
    out: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0] in " \t":
            continue  # inside a nested block (metadata: ...)
        m = re.match(r"^([A-Za-z0-9_-]+):(?:\s+(.*))?$", line)
        if not m:
            raise ValueError(f"line {line!r} is not 'key: value'")
        key, value = m.group(1), (m.group(2) or "").rstrip()
        if key in out:
            raise ValueError(f"key {key!r} appears twice")
        if value in (">", "|", ">-", "|-"):
            block = []
            while i < len(lines) and (lines[i].startswith((" ", "\t")) or not lines[i].strip()):
                block.append(lines[i].strip())
                i += 1
            out[key] = (" " if value.startswith(">") else "\n").join(b for b in block if b)
        elif value.startswith('"'):
            if not value.endswith('"') or len(value) < 2:
                raise ValueError(f"{key}: unterminated double-quoted value")
            out[key] = json.loads(value)
        elif value.startswith("'"):
            if not value.endswith("'") or len(value) < 2:
                raise ValueError(f"{key}: unterminated single-quoted value")
            out[key] = value[1:-1].replace("''", "'")
        else:
            if value and value[0] in "[]{}&*!|>%@`,?-#":
                raise ValueError(f"{key}: a plain value may not start with {value[0]!r}; quote it")
            if ": " in value or value.endswith(":"):
                raise ValueError(f"{key}: a plain value may not contain ': '; quote it")
            if " #" in value:
                raise ValueError(f"{key}: ' #' starts a YAML comment; quote the value")
            out[key] = value
    return out, body


def check_skill(path: Path) -> None:
    where = rel(path)
    try:
        meta, body = parse_frontmatter(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        check(False, f"{where}: frontmatter: {e}")
        return
    check(True, f"{where}: frontmatter parses")
    try:  # a second opinion where PyYAML is installed
        import yaml  # type: ignore
        text = path.read_text(encoding="utf-8")
        loaded = yaml.safe_load(text[4:text.find("\n---\n", 3)])
        check(isinstance(loaded, dict) and all(loaded.get(k) == meta.get(k) for k in ("name", "description")),
              f"{where}: PyYAML reads the same name and description")
    except ImportError:
        pass
    name, desc = meta.get("name", ""), meta.get("description", "")
    check(1 <= len(name) <= 64 and SKILL_NAME.match(name) is not None,
          f"{where}: name {name!r} is 1-64 of a-z, 0-9 and single inner hyphens")
    check(name == path.parent.name, f"{where}: name matches its directory ({path.parent.name})")
    check(1 <= len(desc.strip()) <= 1024, f"{where}: description is 1-1024 characters (got {len(desc)})")
    check(bool(body.strip()), f"{where}: has instructions after the frontmatter")


# --- the rest ---------------------------------------------------------------


def main() -> int:
    examples, plugin_dir, skills = ROOT / "examples", ROOT / ".claude-plugin", ROOT / "skills"

    for name in ("claude_desktop_config.json", "cursor-mcp.json"):
        path = examples / name
        if check(path.is_file(), f"examples/{name} exists"):
            check_client_config(path)
    for path in sorted(examples.glob("*.json")):
        if path.name not in ("claude_desktop_config.json", "cursor-mcp.json"):
            load_json(path)

    if check((plugin_dir / "plugin.json").is_file(), ".claude-plugin/plugin.json exists"):
        plugin_name = check_plugin(plugin_dir)
    else:
        plugin_name = None
    if check((plugin_dir / "marketplace.json").is_file(), ".claude-plugin/marketplace.json exists"):
        check_marketplace(plugin_dir, plugin_name)
    for path in sorted(plugin_dir.glob("*.json")):
        if path.name not in ("plugin.json", "marketplace.json"):
            load_json(path)

    skill_files = sorted(skills.glob("*/SKILL.md"))
    check(len(skill_files) >= 2, f"skills/ has at least two skills (found {len(skill_files)})")
    for want in ("l402-pay-and-fetch", "l402-gate-an-api"):
        check((skills / want / "SKILL.md").is_file(), f"skills/{want}/SKILL.md exists")
    for d in sorted(p for p in skills.iterdir() if p.is_dir()) if skills.is_dir() else []:
        check((d / "SKILL.md").is_file(), f"skills/{d.name}/ has a SKILL.md")
    for path in skill_files:
        check_skill(path)

    agent = examples / "agent.py"
    if check(agent.is_file(), "examples/agent.py exists"):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                py_compile.compile(str(agent), cfile=str(Path(tmp) / "agent.pyc"), doraise=True)
                check(True, "examples/agent.py compiles")
            except py_compile.PyCompileError as e:
                check(False, "examples/agent.py compiles: " + " | ".join(l.strip() for l in e.msg.splitlines() if l.strip()))
    script = examples / "claude-code.sh"
    if check(script.is_file(), "examples/claude-code.sh exists") and shutil.which("bash"):
        r = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        check(r.returncode == 0, f"examples/claude-code.sh parses (bash -n){': ' + r.stderr.strip() if r.stderr else ''}")

    readme = ROOT / "README.md"
    if readme.is_file():
        links = set(re.findall(r"\]\(((?:examples|skills|\.claude-plugin)[^)#\s]*)\)", readme.read_text(encoding="utf-8")))
        for link in sorted(links):
            check((ROOT / link).exists(), f"README link {link} exists")

    failed = sum(1 for ok, _ in results if not ok)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
