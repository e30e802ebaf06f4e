// The Twemoji dataset builder on a small package built in the test: captions (with skin tones), white
// compositing of transparent pixels, the 5% evaluation rule, the error for a package without emoji.json, and the key
// that groups an emoji's skin-tone variations.
using System.Formats.Tar;
using System.IO.Compression;
using System.Text;
using InstaFlow.IO;
using InstaFlow.Training.Data;

namespace InstaFlow.Tests.Training;

public sealed class TwemojiDatasetTests : IDisposable
{
    private readonly string _tmp = Directory.CreateTempSubdirectory("twemoji-").FullName;
    public void Dispose() => Directory.Delete(_tmp, recursive: true);

    private string MakePackage(bool withJson)
    {
        var tgz = Path.Combine(_tmp, "pkg.tgz");
        using var fs = File.Create(tgz);
        using var gz = new GZipStream(fs, CompressionLevel.Fastest);
        using var tar = new TarWriter(gz);
        void Add(string name, byte[] data)
        {
            var e = new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(data) };
            tar.WriteEntry(e);
        }
        if (withJson)
            Add("package/emoji.json", Encoding.UTF8.GetBytes("""
                [{"name":"Red Apple","image":"1f34e.png","short_names":["apple"],"category":"Food & Drink","subcategory":"food-fruit","has_img_twitter":true},
                 {"name":"Thumbs Up Sign","image":"1f44d.png","short_names":["+1","thumbsup"],"category":"People & Body","subcategory":"hand-fingers-closed","has_img_twitter":true,
                  "skin_variations":{"1F3FD":{"image":"1f44d-1f3fd.png","has_img_twitter":true}}}]
                """));
        // A 2x1 RGBA image: one opaque red pixel, one fully transparent pixel.
        var rgba = new byte[] { 255, 0, 0, 255, 0, 0, 0, 0 };
        foreach (var f in new[] { "1f34e.png", "1f44d.png", "1f44d-1f3fd.png" })
            Add("package/img/twitter/64/" + f, Png.Encode(2, 1, 4, rgba));
        return tgz;
    }

    [Fact]
    public void Build_SmallPackage_WritesCaptionsImagesAndSplit()
    {
        var outDir = Path.Combine(_tmp, "out");
        int n = TwemojiDataset.Build(outDir, MakePackage(withJson: true));
        Assert.Equal(3, n);
        var items = TwemojiDataset.Load(outDir);
        Assert.Equal(new[] { "1f34e.png", "1f44d-1f3fd.png", "1f44d.png" }, items.Select(i => i.File));
        Assert.Equal("red apple", items[0].Caption);
        Assert.Equal("thumbs up sign: medium skin tone", items[1].Caption);
        Assert.Contains("thumbsup: medium skin tone", items[1].ExtraCaptions);
        Assert.Contains("food-fruit", items[0].ExtraCaptions);
        Assert.Equal(new[] { true, false, false }, items.Select(i => i.IsEval));
        var img = Png.Read(Path.Combine(outDir, "images", "1f34e.png"));
        Assert.Equal(3, img.Channels);
        Assert.Equal(new byte[] { 255, 0, 0, 255, 255, 255 }, img.Pixels);
    }

    [Theory]
    [InlineData("thumbs up sign: medium skin tone", "thumbs up sign")]
    [InlineData("thumbs up sign", "thumbs up sign")]
    [InlineData("kiss: woman, man: medium skin tone, dark skin tone", "kiss: woman, man")]
    [InlineData("kiss: woman, man", "kiss: woman, man")]
    [InlineData("couple with heart: light skin tone", "couple with heart")]
    [InlineData("keycap: *", "keycap: *")]
    [InlineData("woman: light skin tone, curly hair", "woman: light skin tone, curly hair")]
    public void EmojiKey_Captions_SkinTonesRemovedOnlyAsAWholeQualifier(string caption, string key) =>
        Assert.Equal(key, TwemojiDataset.EmojiKey(caption));

    [Fact]
    public void Build_PackageWithoutEmojiJson_ThrowsNamingFile()
    {
        var e = Assert.Throws<InvalidInputException>(() => TwemojiDataset.Build(Path.Combine(_tmp, "o2"), MakePackage(withJson: false)));
        Assert.Contains("emoji.json", e.Message);
    }
}
