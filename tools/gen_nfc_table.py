# Writes src/InstaFlow/Models/Clip/nfc.txt, the Unicode data ClipNfc needs (the library runs with invariant
# globalization, where string.Normalize leaves non-ASCII text unchanged). Hex fields, one record a line:
#   K first last ccc   - canonical combining class of a range of code points
#   D cp d1 d2 ...     - full canonical decomposition (Hangul syllables are algorithmic and left out)
#   C first second cp  - primary composite of a pair (composition exclusions left out)
import os
import sys
import unicodedata as u

out = os.path.join(os.path.dirname(__file__), "..", "src", "InstaFlow", "Models", "Clip", "nfc.txt")
lines = [f"# Unicode {u.unidata_version} NFC data, written by tools/gen_nfc_table.py from Python {sys.version.split()[0]}"]
run = None
for cp in range(0x110001):
    ccc = u.combining(chr(cp)) if cp < 0x110000 else 0
    if run and (ccc != run[2] or cp != run[1] + 1):
        lines.append(f"K {run[0]:X} {run[1]:X} {run[2]:X}")
        run = None
    if ccc and run is None:
        run = [cp, cp, ccc]
    elif ccc:
        run[1] = cp
for cp in range(0x110000):
    c = chr(cp)
    if 0xAC00 <= cp < 0xAC00 + 11172:
        continue
    nfd = u.normalize("NFD", c)
    if nfd != c:
        lines.append("D " + " ".join(f"{ord(x):X}" for x in c + nfd))
    d = u.decomposition(c)
    if d and not d.startswith("<") and len(d.split()) == 2 and u.normalize("NFC", c) == c:
        lines.append("C " + d + f" {cp:X}")
with open(out, "w", encoding="ascii", newline="\n") as f:
    f.write("\n".join(lines) + "\n")
