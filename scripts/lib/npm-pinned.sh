# Sourced by the scripts that run a pinned npm package (and Node 22, the npm
# package "node") from a cache: tests/<dir>/package-lock.json pins the tree,
# `npm ci` installs it into a directory keyed by the package's version and
# the lockfile's hash, so a second run installs nothing, and an install is
# made beside the final directory and renamed into place, so a concurrent
# run never sees half of one. The registry comes from tests/<dir>/.npmrc.
#
# Set before sourcing:
#   npm_tag    the script's name in messages, e.g. "mcpb.sh"
#   npm_name   the cache directory's prefix, e.g. "mcpb"
#   npm_src    the directory with package.json, package-lock.json, .npmrc
#   npm_pkg    the package whose version keys the cache, e.g. "@anthropic-ai/mcpb"
#   npm_probe  a path under node_modules the install must produce
# and optionally define npm_verify DIR (run on a fresh install in DIR,
# before it is renamed into place; fail to refuse it).
# Defines: npm_version, cache_root, cache, node, present, installed, install.

npm_version=$(sed -n "s|.*\"$npm_pkg\": *\"\([^\"]*\)\".*|\1|p" "$npm_src/package.json" | head -n1)
[ -n "$npm_version" ] || { echo "$npm_tag: $npm_src/package.json does not pin $npm_pkg" >&2; exit 1; }
npm_lock_hash=$(sha256sum "$npm_src/package-lock.json" | cut -c1-12)
cache_root=${L402_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/l402-mcp}
cache="$cache_root/$npm_name-$npm_version-$npm_lock_hash"
node="$cache/node_modules/node/bin/node"

present() { [ -x "$node" ] && [ -e "$cache/node_modules/$npm_probe" ]; }
installed() { [ -f "$cache/.installed" ] && present; }

install() {
  command -v npm >/dev/null || { echo "$npm_tag: npm is needed to install $npm_pkg" >&2; exit 1; }
  mkdir -p "$cache_root"
  local tmp
  tmp=$(mktemp -d "$cache_root/.$npm_name-install.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  echo "$npm_tag: installing $npm_pkg@$npm_version and node (${npm_src#"$here/"}/package-lock.json) into $cache" >&2
  cp "$npm_src/package.json" "$npm_src/package-lock.json" "$npm_src/.npmrc" "$tmp/"
  (cd "$tmp" && npm ci --no-audit --no-fund --loglevel=error >&2)
  [ -x "$tmp/node_modules/node/bin/node" ] && [ -e "$tmp/node_modules/$npm_probe" ] ||
    { echo "$npm_tag: npm ci did not produce node and $npm_probe in $tmp" >&2; exit 1; }
  if declare -F npm_verify >/dev/null; then
    npm_verify "$tmp" || { echo "$npm_tag: the fresh install in $tmp does not work" >&2; exit 1; }
  fi
  touch "$tmp/.installed"
  if ! mv -T "$tmp" "$cache" 2>/dev/null; then
    # Another run finished first (or a broken install is in the way).
    if installed; then rm -rf "$tmp"; else rm -rf "$cache" && mv -T "$tmp" "$cache"; fi
  fi
  trap - EXIT
  present || { echo "$npm_tag: the install did not produce $npm_probe" >&2; exit 1; }
}
