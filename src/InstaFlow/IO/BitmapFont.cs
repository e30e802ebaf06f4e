// A 5x7 pixel font (plus a descender row) for printable ASCII, drawn into RGB byte images: captions under sample
// grids. Accented letters fall back to their base letter, typographic quotes to ASCII ones, anything else to '?'.
// Kept instead of Skia text: SkiaSharp 4.155.0's NoDependencies native build has no font manager (no fontconfig),
// so SKTypeface.Default has 0 glyphs and draws nothing, even where system fonts are installed; loading a TTF by path
// would make grids depend on the machine's fonts, while this font gives the same pixels everywhere.
using System.Text;

namespace InstaFlow.IO;

public static class BitmapFont
{
    public const int GlyphWidth = 5, GlyphHeight = 8;
    /// <summary>Horizontal distance between glyph origins, and between text lines, in font pixels.</summary>
    public const int Advance = 6, LineHeight = 10;

    // Glyphs for ' ' (32) to '~' (126), eight rows each as two hex digits, top row first (the last row holds the
    // descenders of g, j, p, q, y); bit 4 is the leftmost column.
    private const string Glyphs =
        "000000000000000004040404040004000A0A0000000000000A0A1F0A1F0A0A00040F140E051E040018190204081303000C12140815120D000404000000000000" +  //  !"#$%&'
        "020408080804020008040202020408000004150E150400000004041F0404000000000000060408000000001F0000000000000000000C0C000101020408101000" +  // ()*+,-./
        "0E11131519110E00040C040404040E000E11010204081F001F02040201110E0002060A121F0202001F101E0101110E000608101E11110E001F01020408080800" +  // 01234567
        "0E11110E11110E000E11110F01020C00000C0C000C0C0000000C0C000C040800020408100804020000001F001F00000008040201020408000E11010204000400" +  // 89:;<=>?
        "0E11010D15150E000E1111111F1111001E11111E11111E000E11101010110E001C12111111121C001F10101E10101F001F10101E101010000E11101711110F00" +  // @ABCDEFG
        "1111111F111111000E04040404040E000702020202120C0011121418141211001010101010101F00111B15151111110011111915131111000E11111111110E00" +  // HIJKLMNO
        "1E11111E101010000E11111115120D001E11111E141211000F10100E01011E001F040404040404001111111111110E0011111111110A04001111111515150A00" +  // PQRSTUVW
        "11110A040A1111001111110A040404001F01020408101F000E08080808080E0010100804020101000E02020202020E00040A1100000000000000000000001F00" +  // XYZ[\]^_
        "080400000000000000000E010F110F001010161911111E0000000E1010110E0001010D1311110F0000000E111F100E000609081C0808080000000F11110F010E" +  // `abcdefg
        "101016191111110004000C0404040E00020006020202120C10101214181412000C04040404040E0000001A1515111100000016191111110000000E1111110E00" +  // hijklmno
        "00001E11111E101000000F11110F0101000016191010100000000E100E011E0008081C08080906000000111111130D0000001111110A04000000111115150A00" +  // pqrstuvw
        "0000110A040A110000001111110F010E00001F0204081F000204040804040200040404040404040008040402040408000000081502000000";    // xyz{|}~

    private static readonly byte[] Table = Convert.FromHexString(Glyphs);

    /// <summary>Eight row masks (bit 4 = leftmost column) for c after mapping it to printable ASCII.</summary>
    public static ReadOnlySpan<byte> Glyph(char c) => Table.AsSpan((ToAscii(c) - 32) * GlyphHeight, GlyphHeight);

    /// <summary>c itself when printable ASCII; an accented letter's base letter; ASCII for typographic quotes and dashes; else '?'.</summary>
    public static char ToAscii(char c)
    {
        if (c >= ' ' && c <= '~') return c;
        switch (c)
        {
            case '\u2018' or '\u2019' or '\u02BC': return '\'';
            case '\u201C' or '\u201D': return '"';
            case '\u2013' or '\u2014' or '\u2212': return '-';
        }
        var decomposed = c.ToString().Normalize(NormalizationForm.FormD);
        return decomposed.Length > 1 && decomposed[0] >= ' ' && decomposed[0] <= '~' ? decomposed[0] : '?';
    }

    /// <summary>Splits text into lines of at most maxChars characters, breaking at spaces where it can.</summary>
    public static List<string> Wrap(string text, int maxChars)
    {
        if (maxChars < 1) throw new ArgumentOutOfRangeException(nameof(maxChars), maxChars, "a line must hold at least one character");
        var lines = new List<string>();
        var line = new StringBuilder();
        foreach (var word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var w = word;
            if (line.Length > 0 && line.Length + 1 + w.Length > maxChars) { lines.Add(line.ToString()); line.Clear(); }
            while (w.Length > maxChars) { lines.Add(w[..maxChars]); w = w[maxChars..]; }
            if (line.Length > 0) line.Append(' ');
            line.Append(w);
        }
        if (line.Length > 0) lines.Add(line.ToString());
        return lines;
    }

    /// <summary>
    /// Draws one line of text into an RGB image (width x height, 3 bytes a pixel) with its top-left corner at (x, y),
    /// each font pixel as a scale x scale block; pixels outside the image are skipped.
    /// </summary>
    public static void Draw(byte[] rgb, int width, int height, int x, int y, string text, int scale, byte r, byte g, byte b)
    {
        if (rgb.Length < (long)width * height * 3) throw new ArgumentException($"the image buffer holds {rgb.Length} bytes, less than {width}x{height}x3");
        for (int k = 0; k < text.Length; k++)
        {
            var glyph = Glyph(text[k]);
            int gx = x + k * Advance * scale;
            for (int row = 0; row < GlyphHeight; row++)
                for (int col = 0; col < GlyphWidth; col++)
                {
                    if ((glyph[row] >> (GlyphWidth - 1 - col) & 1) == 0) continue;
                    for (int dy = 0; dy < scale; dy++)
                        for (int dx = 0; dx < scale; dx++)
                        {
                            int px = gx + col * scale + dx, py = y + row * scale + dy;
                            if ((uint)px >= (uint)width || (uint)py >= (uint)height) continue;
                            int o = (py * width + px) * 3;
                            rgb[o] = r; rgb[o + 1] = g; rgb[o + 2] = b;
                        }
                }
        }
    }
}
