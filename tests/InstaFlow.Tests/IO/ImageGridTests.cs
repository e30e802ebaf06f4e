// The bitmap font (complete and distinct glyphs, character fallbacks, wrapping, drawing) and the sample grid layout.
using InstaFlow.IO;

namespace InstaFlow.Tests.IO;

public class ImageGridTests
{
    [Fact]
    public void BitmapFont_LettersAndDigits_HaveDistinctNonEmptyGlyphs()
    {
        var seen = new Dictionary<string, char>();
        for (char c = '!'; c <= '~'; c++)
        {
            var g = BitmapFont.Glyph(c).ToArray();
            Assert.True(g.Any(row => row != 0), $"glyph of '{c}' is empty");
            Assert.All(g, row => Assert.True(row < 32, $"glyph of '{c}' is wider than 5 columns"));
            var key = Convert.ToHexString(g);
            Assert.False(seen.TryGetValue(key, out var other), $"'{c}' and '{other}' share a glyph");
            seen[key] = c;
        }
        Assert.All(BitmapFont.Glyph(' ').ToArray(), row => Assert.Equal(0, row));
    }

    [Theory]
    [InlineData('a', 'a')] [InlineData('ô', 'o')] [InlineData('É', 'E')] [InlineData('ñ', 'n')]
    [InlineData('\u2019', '\'')] [InlineData('\u201C', '"')] [InlineData('\u2014', '-')] [InlineData('中', '?')] [InlineData('\n', '?')]
    public void BitmapFont_ToAscii_MapsToPrintableFallbacks(char c, char expected) => Assert.Equal(expected, BitmapFont.ToAscii(c));

    [Fact]
    public void BitmapFont_Wrap_BreaksAtSpacesAndSplitsLongWords()
    {
        Assert.Equal(["man farmer:", "light skin", "tone"], BitmapFont.Wrap("man farmer: light skin tone", 11));
        Assert.Equal(["abcd", "efgh", "ij x"], BitmapFont.Wrap("abcdefghij x", 4));
        Assert.Empty(BitmapFont.Wrap("   ", 10));
        Assert.All(BitmapFont.Wrap("thumbs up sign: medium skin tone", 7), l => Assert.True(l.Length <= 7, l));
    }

    [Fact]
    public void BitmapFont_Draw_SetsExactlyTheGlyphsPixels()
    {
        int w = 20, h = 12;
        var rgb = new byte[w * h * 3];
        Array.Fill(rgb, (byte)255);
        BitmapFont.Draw(rgb, w, h, 3, 2, "T", 1, 10, 20, 30);
        var t = BitmapFont.Glyph('T');
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int gx = x - 3, gy = y - 2;
                bool on = gx is >= 0 and < 5 && gy is >= 0 and < 8 && (t[gy] >> (4 - gx) & 1) == 1;
                int o = (y * w + x) * 3;
                Assert.True(on ? rgb[o] == 10 && rgb[o + 1] == 20 && rgb[o + 2] == 30 : rgb[o] == 255 && rgb[o + 1] == 255 && rgb[o + 2] == 255,
                    $"pixel ({x}, {y}) should be {(on ? "ink" : "white")}");
            }
        // clipped at the border without throwing
        BitmapFont.Draw(rgb, w, h, w - 2, h - 3, "W", 2, 0, 0, 0);
    }

    private static byte[] Solid(int w, int h, byte r, byte g, byte b)
    {
        var img = new byte[w * h * 3];
        for (int i = 0; i < w * h; i++) { img[i * 3] = r; img[i * 3 + 1] = g; img[i * 3 + 2] = b; }
        return img;
    }

    [Fact]
    public void ImageGrid_TwoRowsScaled_PlacesCellsAndCaptions()
    {
        var cells = new[] { new[] { Solid(30, 10, 255, 0, 0), Solid(30, 10, 0, 255, 0) }, new[] { Solid(30, 10, 0, 0, 255), Solid(30, 10, 9, 9, 9) } };
        var (w, h, rgb) = ImageGrid.Compose(cells, 30, 10, scale: 2, captions: ["red green", "blue"], pad: 4);
        Assert.Equal(2 * (60 + 4) + 4, w);
        // each row: 20 cell pixels, pad, one caption line (10 px), pad
        Assert.Equal(4 + 2 * (20 + 4 + 10 + 4), h);
        byte[] Px(int x, int y) => rgb.AsSpan((y * w + x) * 3, 3).ToArray();
        Assert.Equal(new byte[] { 255, 0, 0 }, Px(4, 4));
        Assert.Equal(new byte[] { 255, 0, 0 }, Px(63, 23));
        Assert.Equal(new byte[] { 255, 255, 255 }, Px(64, 4)); // padding between cells
        Assert.Equal(new byte[] { 0, 255, 0 }, Px(68, 4));
        int row2 = 4 + 20 + 4 + 10 + 4;
        Assert.Equal(new byte[] { 0, 0, 255 }, Px(4, row2));
        Assert.Equal(new byte[] { 9, 9, 9 }, Px(127, row2 + 19));
        // ink under each row, inside its caption band, and nowhere else
        bool Ink(int y0, int y1) => Enumerable.Range(y0, y1 - y0).Any(y => Enumerable.Range(0, w).Any(x => Px(x, y)[0] == 32));
        Assert.True(Ink(24, row2), "no caption under row 1");
        Assert.True(Ink(row2 + 20, h), "no caption under row 2");
        Assert.False(Ink(0, 24) || Ink(row2, row2 + 20), "caption ink over the images");

        var (_, h0, bare) = ImageGrid.Compose(cells, 30, 10, scale: 2, pad: 4);
        Assert.Equal(4 + 2 * (20 + 4), h0);
        Assert.DoesNotContain(bare.Chunk(3), p => p[0] == 32);
    }

    [Fact]
    public void ImageGrid_WrongCellSize_NamesTheSizes()
    {
        var e = Assert.Throws<ArgumentException>(() => ImageGrid.Compose([[new byte[5]]], 3, 2));
        Assert.Contains("3x2x3", e.Message);
        Assert.Throws<ArgumentException>(() => ImageGrid.Compose([[Solid(1, 1, 0, 0, 0)]], 1, 1, captions: ["a", "b"]));
    }
}
