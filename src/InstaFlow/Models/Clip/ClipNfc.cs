// Unicode NFC (canonical decomposition, canonical ordering, canonical composition) from the embedded nfc.txt:
// the library runs with invariant globalization, where string.Normalize leaves non-ASCII text unchanged.
using System.Globalization;
using System.Text;

namespace InstaFlow.Models.Clip;

internal static class ClipNfc
{
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    private static readonly Dictionary<int, byte> CombiningClass = new();
    private static readonly Dictionary<int, int[]> Decomposition = new();
    private static readonly Dictionary<(int, int), int> Composition = new();

    static ClipNfc()
    {
        using var stream = typeof(ClipNfc).Assembly.GetManifestResourceStream("InstaFlow.Models.Clip.nfc.txt")
            ?? throw new InvalidOperationException("embedded resource nfc.txt is missing from the build");
        using var reader = new StreamReader(stream);
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0 || line[0] == '#') continue;
            var f = line[2..].Split(' ').Select(h => int.Parse(h, NumberStyles.HexNumber)).ToArray();
            switch (line[0])
            {
                case 'K':
                    for (int cp = f[0]; cp <= f[1]; cp++) CombiningClass[cp] = (byte)f[2];
                    break;
                case 'D': Decomposition[f[0]] = f[1..]; break;
                case 'C': Composition[(f[0], f[1])] = f[2]; break;
            }
        }
    }

    public static string Normalize(string s)
    {
        if (Ascii.IsValid(s)) return s;
        var cps = new List<int>(s.Length);
        foreach (var r in s.EnumerateRunes()) Decompose(r.Value, cps);
        SortMarks(cps);
        Compose(cps);
        var sb = new StringBuilder(s.Length);
        foreach (int cp in cps) sb.Append(char.ConvertFromUtf32(cp));
        return sb.ToString();
    }

    private static int Ccc(int cp) => CombiningClass.TryGetValue(cp, out byte c) ? c : 0;

    private static void Decompose(int cp, List<int> into)
    {
        int s = cp - SBase;
        if (s is >= 0 and < SCount)
        {
            into.Add(LBase + s / NCount);
            into.Add(VBase + s % NCount / TCount);
            if (s % TCount != 0) into.Add(TBase + s % TCount);
        }
        else if (Decomposition.TryGetValue(cp, out var d)) into.AddRange(d);
        else into.Add(cp);
    }

    // Canonical ordering: within each run of combining marks, a stable sort by combining class.
    private static void SortMarks(List<int> cps)
    {
        for (int i = 1; i < cps.Count; i++)
        {
            int c = Ccc(cps[i]);
            if (c == 0) continue;
            for (int j = i; j > 0 && Ccc(cps[j - 1]) > c; j--) (cps[j - 1], cps[j]) = (cps[j], cps[j - 1]);
        }
    }

    // Each char joins the last starter when nothing between them blocks it: a blocker is a starter or a mark of the
    // same or higher class.
    private static void Compose(List<int> cps)
    {
        int starter = -1, lastCcc = 0, n = 0;
        for (int i = 0; i < cps.Count; i++)
        {
            int cp = cps[i], ccc = Ccc(cp);
            bool adjacent = starter == n - 1;
            if (starter >= 0 && (adjacent || (lastCcc != 0 && lastCcc < ccc)) && TryCompose(cps[starter], cp, out int composite))
            {
                cps[starter] = composite;
                continue;
            }
            if (ccc == 0) starter = n;
            lastCcc = ccc;
            cps[n++] = cp;
        }
        cps.RemoveRange(n, cps.Count - n);
    }

    private static bool TryCompose(int first, int second, out int composite)
    {
        int l = first - LBase, v = second - VBase, s = first - SBase, t = second - TBase;
        if (l is >= 0 and < LCount && v is >= 0 and < VCount) composite = SBase + (l * VCount + v) * TCount;
        else if (s is >= 0 and < SCount && s % TCount == 0 && t is > 0 and < TCount) composite = first + t;
        else return Composition.TryGetValue((first, second), out composite);
        return true;
    }
}
