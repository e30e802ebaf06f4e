// Sample grids: equal-size RGB images laid out in rows (one row per prompt, one column per seed) on white, each
// row's caption printed under it in the bitmap font, so a grid image says what was asked for.
namespace InstaFlow.IO;

public static class ImageGrid
{
    /// <summary>
    /// cells[row][col] are HWC RGB images of cellWidth x cellHeight, drawn scale times larger (nearest neighbour) with
    /// pad pixels between them; captions[row] (optional) is wrapped to the grid's width and printed under its row.
    /// </summary>
    public static (int Width, int Height, byte[] Rgb) Compose(IReadOnlyList<IReadOnlyList<byte[]>> cells, int cellWidth, int cellHeight,
        int scale = 1, IReadOnlyList<string>? captions = null, int pad = 4)
    {
        if (cells.Count == 0 || cells.Any(r => r.Count == 0)) throw new ArgumentException("a grid needs at least one image in every row");
        if (captions != null && captions.Count != cells.Count) throw new ArgumentException($"{captions.Count} captions for {cells.Count} rows");
        if (scale < 1) throw new ArgumentOutOfRangeException(nameof(scale), scale, "scale must be at least 1");
        int cols = cells.Max(r => r.Count), cw = cellWidth * scale, ch = cellHeight * scale;
        foreach (var img in cells.SelectMany(r => r))
            if (img.Length != cellWidth * cellHeight * 3) throw new ArgumentException($"a cell holds {img.Length} bytes, expected {cellWidth}x{cellHeight}x3");
        int width = cols * (cw + pad) + pad;
        int maxChars = Math.Max(1, (width - 2 * pad) / BitmapFont.Advance);
        var lines = cells.Select((_, y) => captions == null ? new List<string>() : BitmapFont.Wrap(captions[y], maxChars)).ToArray();
        var rowTop = new int[cells.Count + 1];
        rowTop[0] = pad;
        for (int y = 0; y < cells.Count; y++)
            rowTop[y + 1] = rowTop[y] + ch + pad + (lines[y].Count > 0 ? lines[y].Count * BitmapFont.LineHeight + pad : 0);
        int height = rowTop[^1];
        var rgb = new byte[width * height * 3];
        Array.Fill(rgb, (byte)255);
        for (int y = 0; y < cells.Count; y++)
        {
            for (int x = 0; x < cells[y].Count; x++)
            {
                var img = cells[y][x];
                int left = pad + x * (cw + pad);
                for (int py = 0; py < ch; py++)
                    for (int px = 0; px < cw; px++)
                    {
                        int src = ((py / scale) * cellWidth + px / scale) * 3, dst = ((rowTop[y] + py) * width + left + px) * 3;
                        rgb[dst] = img[src]; rgb[dst + 1] = img[src + 1]; rgb[dst + 2] = img[src + 2];
                    }
            }
            for (int l = 0; l < lines[y].Count; l++)
                BitmapFont.Draw(rgb, width, height, pad, rowTop[y] + ch + pad / 2 + l * BitmapFont.LineHeight, lines[y][l], 1, 32, 32, 32);
        }
        return (width, height, rgb);
    }
}
