// The Twemoji dataset held in memory for training and evaluation: every image as one persistent [N, 3, 64, 64]
// tensor in [-1, 1], its captions, its subcategory label, and the fixed train/eval split.
using InstaFlow.Flow;
using InstaFlow.IO;
using InstaFlow.Tensors;
using InstaFlow.Training.Data;

namespace InstaFlow.Training.TextToImage;

public sealed class TwemojiImages
{
    private TwemojiImages(IReadOnlyList<TwemojiItem> items, Tensor images, int[] labels, string[] subcategories)
    {
        Items = items; Images = images; Labels = labels; Subcategories = subcategories;
        TrainIndices = Enumerable.Range(0, items.Count).Where(i => !items[i].IsEval).ToArray();
        EvalIndices = Enumerable.Range(0, items.Count).Where(i => items[i].IsEval).ToArray();
    }

    public IReadOnlyList<TwemojiItem> Items { get; }
    /// <summary>[N, 3, H, W] in [-1, 1] (the VAE's input range), persistent.</summary>
    public Tensor Images { get; }
    /// <summary>Index into Subcategories for each item.</summary>
    public int[] Labels { get; }
    /// <summary>Subcategory names in ordinal order: the classifier's classes.</summary>
    public string[] Subcategories { get; }
    public int[] TrainIndices { get; }
    public int[] EvalIndices { get; }
    public int Count => Items.Count;

    /// <summary>Reads captions.jsonl and every image under dir (as written by `instaflow data twemoji`).</summary>
    public static TwemojiImages Load(string dir)
    {
        var items = TwemojiDataset.Load(dir);
        if (items.Count == 0) throw new InvalidInputException($"{dir}: the dataset has no images");
        var first = Png.Read(Path.Combine(dir, "images", items[0].File));
        int h = first.Height, w = first.Width;
        var images = Tensor.EmptyPersistent(items.Count, 3, h, w);
        Parallel.For(0, items.Count, i =>
        {
            var png = Png.Read(Path.Combine(dir, "images", items[i].File)).ToRgbOnWhite();
            if (png.Width != w || png.Height != h) throw new InvalidInputException($"{items[i].File}: {png.Width}x{png.Height}, expected {w}x{h} like the other images");
            var dst = images.Span.Slice(i * 3 * h * w, 3 * h * w);
            ImageTensors.FillChwSigned(png.Pixels, dst, 3);
        });
        var subs = items.Select(i => i.Subcategory).Distinct().OrderBy(s => s, StringComparer.Ordinal).ToArray();
        var labels = items.Select(i => Array.BinarySearch(subs, i.Subcategory, StringComparer.Ordinal)).ToArray();
        return new TwemojiImages(items, images, labels, subs);
    }

    /// <summary>Every caption of an item: the main one first, then the extras.</summary>
    public static string[] CaptionsOf(TwemojiItem item) => [item.Caption, .. item.ExtraCaptions];

    /// <summary>The rows of source (any [N, ...] tensor aligned with the items) at the given indices.</summary>
    public static Tensor Gather(Tensor source, ReadOnlySpan<int> indices)
    {
        var shape = source.ShapeArray();
        shape[0] = indices.Length;
        var r = Tensor.Empty(shape);
        for (int b = 0; b < indices.Length; b++) Rows.Copy(source, indices[b], r, b);
        return r;
    }

    /// <summary>A uniform draw (with replacement) of count entries of pool.</summary>
    public static int[] Draw(Tensors.Random.TorchGenerator rng, int[] pool, int count)
    {
        var r = new int[count];
        for (int b = 0; b < count; b++) r[b] = pool[(int)(rng.NextUInt64() % (ulong)pool.Length)];
        return r;
    }
}
