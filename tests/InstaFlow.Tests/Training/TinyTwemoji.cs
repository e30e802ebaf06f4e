// A Twemoji-format dataset folder small enough for tests: 16x16 smooth colour gradients (learnable in a few steps),
// captions.jsonl with two subcategories and every fourth image held out, as `instaflow data twemoji` writes it.
using System.Text.Json;
using InstaFlow.IO;

namespace InstaFlow.Tests.Training;

public static class TinyTwemoji
{
    public const int Size = 16;

    /// <summary>Writes count images and their captions under dir; returns dir.</summary>
    public static string Write(string dir, int count = 12)
    {
        Directory.CreateDirectory(Path.Combine(dir, "images"));
        var lines = new List<string>();
        for (int b = 0; b < count; b++)
        {
            var rgb = new byte[Size * Size * 3];
            for (int y = 0; y < Size; y++)
                for (int x = 0; x < Size; x++)
                    for (int c = 0; c < 3; c++)
                        rgb[(y * Size + x) * 3 + c] = (byte)(127.5 + 120 * Math.Sin(0.3 * (b + 1) * (c + 1) + 0.2 * x - 0.1 * y * (b % 3)));
            string file = $"img{b:D2}.png";
            Png.Write(Path.Combine(dir, "images", file), Size, Size, 3, rgb);
            lines.Add(JsonSerializer.Serialize(new Dictionary<string, object>
            {
                ["file"] = file, ["caption"] = $"{(b % 2 == 0 ? "red" : "blue")} thing {b}", ["extra_captions"] = new[] { $"thing {b}" },
                ["category"] = "Test", ["subcategory"] = b % 2 == 0 ? "even" : "odd", ["split"] = b % 4 == 0 ? "eval" : "train",
            }));
        }
        File.WriteAllLines(Path.Combine(dir, "captions.jsonl"), lines);
        return dir;
    }
}
