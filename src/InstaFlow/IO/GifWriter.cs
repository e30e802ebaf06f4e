// A small animated-GIF (GIF89a) encoder: each RGB frame is mapped to one fixed 6x7x6 colour cube (252 colours, no
// dithering) and LZW-compressed; a NETSCAPE2.0 block makes it loop. SkiaSharp can decode GIFs but not encode them.
namespace InstaFlow.IO;

public static class GifWriter
{
    private const int RLevels = 6, GLevels = 7, BLevels = 6;

    /// <summary>Writes RGB uint8 HWC frames of one size; delay in hundredths of a second per frame; loops forever.</summary>
    public static void Write(string path, int width, int height, IReadOnlyList<byte[]> framesHwc, int delayCentiseconds = 10)
    {
        using var f = File.Create(path);
        Write(f, width, height, framesHwc, delayCentiseconds);
    }

    public static void Write(Stream s, int width, int height, IReadOnlyList<byte[]> framesHwc, int delayCentiseconds = 10)
    {
        if (width < 1 || height < 1 || width > 65535 || height > 65535) throw new ArgumentException($"GIF: size {width}x{height} out of range");
        if (framesHwc.Count == 0) throw new ArgumentException("GIF: no frames");
        var w = new BinaryWriter(s);
        // 1. header, logical screen with a 256-entry global colour table (the cube, padded with black)
        w.Write("GIF89a"u8);
        w.Write((ushort)width); w.Write((ushort)height);
        w.Write((byte)0xF7); w.Write((byte)0); w.Write((byte)0);
        for (int i = 0; i < 256; i++)
        {
            if (i >= RLevels * GLevels * BLevels) { w.Write((byte)0); w.Write((byte)0); w.Write((byte)0); continue; }
            int r = i / (GLevels * BLevels), g = i / BLevels % GLevels, b = i % BLevels;
            w.Write((byte)(r * 255 / (RLevels - 1))); w.Write((byte)(g * 255 / (GLevels - 1))); w.Write((byte)(b * 255 / (BLevels - 1)));
        }
        // 2. loop forever (NETSCAPE2.0 application extension)
        w.Write([0x21, 0xFF, 0x0B]); w.Write("NETSCAPE2.0"u8); w.Write([0x03, 0x01, 0x00, 0x00, 0x00]);
        // 3. per frame: graphic control (delay), image descriptor, LZW data
        foreach (var frame in framesHwc)
        {
            if (frame.Length != width * height * 3) throw new ArgumentException($"GIF: a frame has {frame.Length} bytes, not {width}x{height} RGB");
            w.Write([0x21, 0xF9, 0x04, 0x04]); w.Write((ushort)delayCentiseconds); w.Write([(byte)0, (byte)0]);
            w.Write((byte)0x2C); w.Write((ushort)0); w.Write((ushort)0); w.Write((ushort)width); w.Write((ushort)height); w.Write((byte)0);
            var indices = new byte[width * height];
            for (int p = 0; p < indices.Length; p++)
            {
                int r = (frame[3 * p] * (RLevels - 1) + 127) / 255, g = (frame[3 * p + 1] * (GLevels - 1) + 127) / 255, b = (frame[3 * p + 2] * (BLevels - 1) + 127) / 255;
                indices[p] = (byte)((r * GLevels + g) * BLevels + b);
            }
            WriteLzw(w, indices, minCodeSize: 8);
        }
        w.Write((byte)0x3B);
        w.Flush();
    }

    /// <summary>GIF's variable-width LZW (codes up to 12 bits, clear code when the table is full), in sub-blocks of 255 bytes.</summary>
    private static void WriteLzw(BinaryWriter w, byte[] data, int minCodeSize)
    {
        w.Write((byte)minCodeSize);
        int clear = 1 << minCodeSize, end = clear + 1;
        var table = new Dictionary<int, int>();
        int next = end + 1, width = minCodeSize + 1;
        var block = new List<byte>(256);
        int bitBuf = 0, bitCount = 0;
        void Emit(int code)
        {
            bitBuf |= code << bitCount;
            bitCount += width;
            while (bitCount >= 8)
            {
                block.Add((byte)bitBuf);
                bitBuf >>= 8; bitCount -= 8;
                if (block.Count == 255) { w.Write((byte)255); w.Write(block.ToArray()); block.Clear(); }
            }
        }
        Emit(clear);
        int prefix = data[0];
        for (int i = 1; i < data.Length; i++)
        {
            int key = (prefix << 8) | data[i];
            if (table.TryGetValue(key, out int code)) { prefix = code; continue; }
            Emit(prefix);
            if (next < 4096)
            {
                table[key] = next++;
                // the decoder widens one code later than it adds the entry, so widen once next passes 2^width
                if (next > (1 << width) && width < 12) width++;
            }
            else
            {
                Emit(clear);
                table.Clear();
                next = end + 1; width = minCodeSize + 1;
            }
            prefix = data[i];
        }
        Emit(prefix);
        Emit(end);
        if (bitCount > 0) block.Add((byte)bitBuf);
        if (block.Count > 0) { w.Write((byte)block.Count); w.Write(block.ToArray()); }
        w.Write((byte)0);
    }
}
