#!/usr/bin/env bash
# The deployed sizes (`make sizes`, not part of `make test`): every function's arm64 zip built
# as `sam build` builds it (cargo-lambda's zig cross build, the release profile), one line per
# function, and a failure if any zip is 2.5 MB or more (MB = 1,048,576 bytes, as BENCHMARKS.md
# counts). Heavy: fat LTO and one codegen unit per binary, about half an hour on 2 cores from
# nothing; run at low priority.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
# cargo-lambda links with zig (from PyPI) when cross-compiling.
.venv/bin/pip install --quiet --disable-pip-version-check ziglang >/dev/null
rustup target add aarch64-unknown-linux-gnu >/dev/null
functions=(start status convert cancel stripe-webhook expire purge publish usage manage)
bins=()
for f in "${functions[@]}"; do bins+=(--bin "$f"); done
nice -n 19 cargo lambda build --release --arm64 --output-format zip "${bins[@]}"

target="${CARGO_TARGET_DIR:-target}"
limit=$((5 * 1048576 / 2))
over=0
printf '| function | zip bytes | zip MB (arm64) |\n|---|---:|---:|\n'
for f in "${functions[@]}"; do
    zip="$target/lambda/$f/bootstrap.zip"
    bytes=$(stat -c %s "$zip")
    printf '| %s | %d | %s |\n' "$f" "$bytes" "$(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1048576 }')"
    if ((bytes >= limit)); then
        echo "sizes: $f is $bytes bytes zipped, over the 2.5 MB ($limit bytes) limit" >&2
        over=1
    fi
done
exit "$over"
