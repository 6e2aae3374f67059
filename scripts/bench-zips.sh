#!/usr/bin/env bash
# Lambda zips as `cargo lambda build --release --output-format zip` makes them: arm64 when the
# aarch64 target can be installed here, else x86-64. Writes the architecture used to
# target/lambda/ARCH for the report.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
# cargo-lambda links with zig (from PyPI) when cross-compiling.
.venv/bin/pip install --quiet --disable-pip-version-check ziglang >/dev/null
functions=(start status convert cancel stripe-webhook expire purge publish usage manage hello-world)
bins=()
for f in "${functions[@]}"; do bins+=(--bin "$f"); done
target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target/lambda"
if rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 &&
  cargo lambda build --release --arm64 --output-format zip "${bins[@]}"; then
  echo arm64 > "$target/lambda/ARCH"
else
  echo "arm64 target unavailable here: building x86-64 zips" >&2
  cargo lambda build --release --x86-64 --output-format zip "${bins[@]}"
  echo x86-64 > "$target/lambda/ARCH"
fi
