#!/usr/bin/env bash
# Packs InstaFlow.Core into a temporary folder source and runs the HelloInstaFlow sample against that package, checking
# that it writes a PNG. Arguments go to the sample: [model folder] [prompt] [output.png]. Used by .ci/run.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# A version no earlier run used, so no NuGet cache can hand back a stale copy of the package.
version="0.1.0-local.$(date +%s)"
dotnet pack "$repo/src/InstaFlow/InstaFlow.csproj" -c Release -o "$tmp/nupkgs" -p:Version="$version" --nologo -v quiet

# The fresh folder beside the machine's usual sources: InstaFlow.Core comes from the package just made (its version is
# new, so no cache holds it), its dependencies (SkiaSharp) from the usual feed.
cat > "$tmp/nuget.config" <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <add key="local" value="$tmp/nupkgs" />
  </packageSources>
</configuration>
XML
project="$repo/samples/HelloInstaFlow/HelloInstaFlow.csproj"
# The sample's bin/obj go to the temp folder too, so a run never reuses assets restored from another package.
build=(-p:InstaFlowVersion="$version" -p:BaseIntermediateOutputPath="$tmp/obj/" -p:BaseOutputPath="$tmp/bin/")
dotnet restore "$project" --configfile "$tmp/nuget.config" "${build[@]}" --nologo -v quiet
dotnet build "$project" -c Release --no-restore "${build[@]}" --nologo -v quiet
out="${3:-$tmp/hello.png}"
dotnet "$tmp/bin/Release/net10.0/HelloInstaFlow.dll" "${1:-$repo/models/twemoji-instaflow}" "${2:-red apple}" "$out"

# A PNG starts with the 8-byte signature 89 50 4E 47 0D 0A 1A 0A.
if [ "$(head -c 8 "$out" | od -An -tx1 | tr -d ' \n')" != "89504e470d0a1a0a" ]; then
  echo "error: $out is not a PNG" >&2
  exit 1
fi
echo "ok: $out ($(stat -c %s "$out") bytes), InstaFlow.Core $version"
