#!/usr/bin/env bash
# Coverage-guided fuzzing of the safetensors and PNG readers with SharpFuzz + AFL++, outside CI (it runs for minutes to
# hours). Findings (crashes, hangs) and the corpus are copied to tests/InstaFlow.Tests/Fuzz/Regressions/<target>/, which
# the test suite replays on every run. Usage: fuzz/run.sh safetensors|png [seconds=300]. Installs afl++ (apt, as root) and the
# sharpfuzz tool if they are missing.
set -euo pipefail
target="${1:?usage: fuzz/run.sh safetensors|png [seconds]}"
seconds="${2:-300}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
command -v afl-fuzz >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq afl++ >/dev/null; }
export PATH="$PATH:$HOME/.dotnet/tools"
command -v sharpfuzz >/dev/null || dotnet tool install --global SharpFuzz.CommandLine --version 2.3.0 >/dev/null

work="$(mktemp -d)"
dotnet publish "$repo/fuzz/InstaFlow.Fuzz" -c Release -o "$work/bin" --nologo -v quiet
sharpfuzz "$work/bin/InstaFlow.Core.dll"   # instruments the library's branches for AFL's coverage map

# Small valid inputs to start from (AFL mutates best from files of a few KB).
mkdir -p "$work/seeds"
case "$target" in
  safetensors) cp "$repo/../shared/fixtures/io/vae_decode_nonsquare.safetensors" "$work/seeds/" ;;
  png) cp "$repo"/../shared/fixtures/e2e/*_img0.png "$work/seeds/" ;;
  *) echo "error: target must be safetensors or png" >&2; exit 2 ;;
esac

# -t: per-input timeout (ms), generous for the .NET start-up of each fork server child; -m none: .NET reserves more
# virtual memory than AFL's default limit.
AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
  timeout --signal=INT "$seconds" afl-fuzz -i "$work/seeds" -o "$work/findings" -t 10000 -m none \
  -- dotnet "$work/bin/InstaFlow.Fuzz.dll" "$target" || true

stats="$work/findings/default/fuzzer_stats"
[ -f "$stats" ] && grep -E "^(execs_done|execs_per_sec|corpus_count|saved_crashes|saved_hangs|bitmap_cvg) " "$stats"
dest="$repo/tests/InstaFlow.Tests/Fuzz/Regressions/$target"
found=0
for f in "$work"/findings/default/{crashes,hangs}/id:*; do
  [ -e "$f" ] || continue
  mkdir -p "$dest"; cp "$f" "$dest/$(basename "$f" | tr ':,' '__')"; found=$((found + 1))
done
echo "$found finding(s) copied to $dest"
# The corpus AFL built (inputs that reached new branches) is kept too, up to 200 of the smallest: the suite replays it,
# so a change that breaks a path the fuzzer once reached fails a test.
mkdir -p "$dest/corpus"
ls -S -r "$work"/findings/default/queue/id:* 2>/dev/null | head -200 | while read -r f; do cp "$f" "$dest/corpus/$(basename "$f" | cut -d, -f1 | tr ':' '_')"; done
echo "$(ls "$dest/corpus" | wc -l) corpus file(s) in $dest/corpus"
rm -rf "$work"
