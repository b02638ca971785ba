#!/usr/bin/env bash
# The SDK (`herald`) must build with no features and with each feature alone: a feature
# that only compiles next to another one is a bug its users meet, not CI. The feature list
# comes from cargo metadata, so a new feature is checked without editing this file.
#
#   bash scripts/check-sdk-features.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

features="$(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
pkg = next(p for p in json.load(sys.stdin)["packages"] if p["name"] == "herald")
print(" ".join(sorted(f for f in pkg["features"] if f != "default")))')"

echo "herald: --no-default-features"
cargo check -q -p herald --lib --no-default-features
for f in $features; do
    echo "herald: --no-default-features --features $f"
    cargo check -q -p herald --lib --no-default-features --features "$f"
done
echo "herald: none and each of [$features] alone build"
