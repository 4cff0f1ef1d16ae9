#!/usr/bin/env bash
# Build virtform as it was at a given commit, once, for upgrade tests: prints the folder holding
# that commit's built tree (dist/ + node_modules/). Cached by sha under
# ${VIRTFORM_OLD_BUILDS:-/var/cache/virtform-test/old-builds}/<sha>; the build runs in a temporary
# `git worktree` of this repository, removed afterwards.
set -euo pipefail
rev=${1:?usage: old-build.sh <commit>}
repo=$(cd "$(dirname "$0")/.." && pwd)
# A shallow clone (a CI checkout may be one) lacks the old commits: fetch the history once.
if ! git -C "$repo" rev-parse --verify --quiet "$rev^{commit}" >/dev/null && [[ $(git -C "$repo" rev-parse --is-shallow-repository) == true ]]; then
  git -C "$repo" fetch --quiet --unshallow >&2
fi
sha=$(git -C "$repo" rev-parse --verify "$rev^{commit}")
cache=${VIRTFORM_OLD_BUILDS:-/var/cache/virtform-test/old-builds}
out=$cache/$sha
if [[ -f $out/.built ]]; then echo "$out"; exit 0; fi
mkdir -p "$cache"
exec 9>"$cache/.lock-$sha"
flock 9
if [[ -f $out/.built ]]; then echo "$out"; exit 0; fi
tmp=$(mktemp -d "$cache/.wt-$sha.XXXXXX")
cleanup() { git -C "$repo" worktree remove --force "$tmp" >/dev/null 2>&1 || rm -rf "$tmp"; git -C "$repo" worktree prune >/dev/null 2>&1 || true; }
trap cleanup EXIT
git -C "$repo" worktree add --detach "$tmp" "$sha" >&2
# The same lock file as this checkout's: its node_modules is copied (npm ci compiles better-sqlite3
# from source when no prebuilt binary can be fetched, minutes on a loaded machine).
if [[ -f $repo/node_modules/better-sqlite3/build/Release/better_sqlite3.node ]] && cmp -s "$repo/package-lock.json" "$tmp/package-lock.json"; then
  cp -a "$repo/node_modules" "$tmp/node_modules"
else
  # Without install scripts: better-sqlite3's native binding is copied from this checkout when it
  # is the same version (else built), esbuild's binary is not needed to build or run the CLI.
  (cd "$tmp" && npm ci --no-audit --no-fund --ignore-scripts >&2)
  ver() { node -p "require('$1/node_modules/better-sqlite3/package.json').version" 2>/dev/null || true; }
  if [[ -f $repo/node_modules/better-sqlite3/build/Release/better_sqlite3.node && "$(ver "$repo")" == "$(ver "$tmp")" ]]; then
    mkdir -p "$tmp/node_modules/better-sqlite3/build/Release"
    cp "$repo/node_modules/better-sqlite3/build/Release/better_sqlite3.node" "$tmp/node_modules/better-sqlite3/build/Release/"
  else
    (cd "$tmp" && npm rebuild better-sqlite3 >&2)
  fi
fi
(cd "$tmp" && npm run -s build >&2)
rm -rf "$out.partial" && mkdir -p "$out.partial"
cp -a "$tmp/dist" "$tmp/node_modules" "$tmp/package.json" "$tmp/schemas" "$out.partial/"
touch "$out.partial/.built"
rm -rf "$out" && mv "$out.partial" "$out"
echo "$out"
