// CLIP score as torchmetrics 1.2 computes it: CLIPImageProcessor preprocessing (Pillow bicubic resize of the uint8
// image, center crop, rescale, normalize), image and text embeddings of a CLIPModel, 100 * cosine per pair, and
// max(mean, 0) over the batch (the clamp is on the mean, so single pairs may score below zero).
using InstaFlow.IO;
using InstaFlow.Models;
using InstaFlow.Models.Clip;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;

namespace InstaFlow.Evaluation;

/// <summary>transformers CLIPImageProcessor settings (preprocessor_config.json).</summary>
public sealed record ClipImageProcessorConfig
{
    public int ShortestEdge { get; init; } = 224;
    public int CropHeight { get; init; } = 224;
    public int CropWidth { get; init; } = 224;
    public double RescaleFactor { get; init; } = 1 / 255.0;
    public float[] Mean { get; init; } = [0.48145466f, 0.4578275f, 0.40821073f];
    public float[] Std { get; init; } = [0.26862954f, 0.26130258f, 0.27577711f];

    public static ClipImageProcessorConfig Load(string path)
    {
        var c = ConfigFile.Load(path);
        var d = new ClipImageProcessorConfig();
        var size = c.Has("size") ? c.Section("size") : null;
        var crop = c.Has("crop_size") ? c.Section("crop_size") : null;
        c.Require("resample", c.Int("resample", 3) == 3, c.Int("resample", 3).ToString(System.Globalization.CultureInfo.InvariantCulture), "3 (bicubic)");
        foreach (var flag in new[] { "do_resize", "do_center_crop", "do_rescale", "do_normalize" })
            c.Require(flag, c.Bool(flag, true), "false", "true");
        return new ClipImageProcessorConfig
        {
            ShortestEdge = size?.Int("shortest_edge", d.ShortestEdge) ?? d.ShortestEdge,
            CropHeight = crop?.Int("height", d.CropHeight) ?? d.CropHeight,
            CropWidth = crop?.Int("width", d.CropWidth) ?? d.CropWidth,
            RescaleFactor = c.Double("rescale_factor", d.RescaleFactor),
            Mean = c.Floats("image_mean", d.Mean),
            Std = c.Floats("image_std", d.Std),
        };
    }
}

public static class ClipScore
{
    /// <summary>One RGB uint8 HWC image to normalized pixels [3, cropH, cropW], with the resized and cropped uint8 images.</summary>
    public static (float[] Chw, byte[] Resized, byte[] Cropped) Preprocess(byte[] hwc, int width, int height, ClipImageProcessorConfig p)
    {
        // 1. shortest edge to S; the long edge is int(S * long / short), truncated
        int s = p.ShortestEdge;
        int newW, newH;
        if (width <= height) { newW = s; newH = (int)((double)s * height / width); }
        else { newH = s; newW = (int)((double)s * width / height); }
        var resized = PilResize.Bicubic(hwc, width, height, 3, newW, newH);
        // 2. center crop with floor offsets
        if (newW < p.CropWidth || newH < p.CropHeight)
            throw new InvalidInputException($"a {width}x{height} image resized to {newW}x{newH} is smaller than the {p.CropWidth}x{p.CropHeight} crop");
        int top = (newH - p.CropHeight) / 2, left = (newW - p.CropWidth) / 2;
        var cropped = new byte[p.CropHeight * p.CropWidth * 3];
        for (int y = 0; y < p.CropHeight; y++)
            Array.Copy(resized, ((top + y) * newW + left) * 3, cropped, y * p.CropWidth * 3, p.CropWidth * 3);
        // 3-5. rescale (product in double, then float), normalize in float, HWC -> CHW
        int plane = p.CropHeight * p.CropWidth;
        var chw = new float[3 * plane];
        for (int i = 0; i < plane; i++)
            for (int c = 0; c < 3; c++)
                chw[c * plane + i] = ((float)(cropped[i * 3 + c] * p.RescaleFactor) - p.Mean[c]) / p.Std[c];
        return (chw, resized, cropped);
    }

    /// <summary>Token ids as torchmetrics gets them: each prompt tokenized, truncated to the model's length, padded to the longest.</summary>
    public static (int[] Ids, int Length) Tokenize(ClipTokenizer tokenizer, IReadOnlyList<string> prompts, int maxLength)
    {
        var encoded = prompts.Select(t => { var ids = tokenizer.Encode(t); return ids.Length <= maxLength ? ids : [.. ids[..(maxLength - 1)], tokenizer.EosId]; }).ToArray();
        int len = encoded.Max(e => e.Length);
        var all = new int[prompts.Count * len];
        for (int b = 0; b < encoded.Length; b++)
        {
            all.AsSpan(b * len, len).Fill(tokenizer.PadId);
            encoded[b].CopyTo(all, b * len);
        }
        return (all, len);
    }

    /// <summary>
    /// Per-pair scores 100 * cos(image_i, text_i) and the metric max(mean, 0). Pairs go through the towers `chunk` at a
    /// time (the scores do not depend on it), so a large image set does not need one giant batch. Progress counts pairs
    /// scored after each chunk.
    /// </summary>
    public static (float[] PerPair, float Score) Compute(ClipModel model, Tensor pixels, int[] ids, int batch, int chunk = 32,
        IProgress<JobProgress>? progress = null)
    {
        using var _ = GradMode.NoGrad();
        int d = model.ProjectionDim, len = ids.Length / batch;
        var per = new float[batch];
        for (int s = 0; s < batch; s += chunk)
        {
            using var scope = TensorScope.Begin();
            int n = Math.Min(chunk, batch - s);
            var img = model.ImageEmbeds(Ops.Narrow(pixels, 0, s, n)).ToArray();
            var txt = model.TextEmbeds(ids[(s * len)..((s + n) * len)], n).ToArray();
            for (int b = 0; b < n; b++)
            {
                double ii = 0, tt = 0, it = 0;
                for (int j = 0; j < d; j++) { ii += img[b * d + j] * img[b * d + j]; tt += txt[b * d + j] * txt[b * d + j]; it += img[b * d + j] * txt[b * d + j]; }
                per[s + b] = (float)(100 * it / (Math.Sqrt(ii) * Math.Sqrt(tt)));
            }
            progress?.Report(new JobProgress(s + n, batch));
        }
        return (per, Math.Max(per.Average(), 0f));
    }

    /// <summary>
    /// CLIP score of image files against a prompt each: the given prompt, or each PNG's own "prompt" text chunk (as
    /// generate writes it; JPEG, WebP, BMP and GIF files have none, so they need one). Returns every file's prompt and
    /// score and the metric.
    /// </summary>
    public static (string[] Prompts, float[] PerImage, float Score) ScoreFiles(ClipModel model, ClipTokenizer tokenizer, ClipImageProcessorConfig processor,
        IReadOnlyList<string> files, string? prompt = null, IProgress<JobProgress>? progress = null)
    {
        if (files.Count == 0) throw new InvalidInputException("no images to score");
        var texts = new string[files.Count];
        int plane = 3 * processor.CropHeight * processor.CropWidth;
        var pixels = new float[(long)files.Count * plane];
        for (int i = 0; i < files.Count; i++)
        {
            var image = ImageFile.Read(files[i]);
            texts[i] = prompt ?? (image.Text.TryGetValue("prompt", out var t) ? t
                : throw new InvalidInputException($"{files[i]}: no \"prompt\" text chunk (only PNGs written by generate have one; JPEG, WebP, BMP and GIF files never do); pass a prompt (--prompt)"));
            Preprocess(image.Pixels, image.Width, image.Height, processor).Chw.CopyTo(pixels, (long)i * plane);
        }
        var (ids, _) = Tokenize(tokenizer, texts, model.TextConfig.MaxPositionEmbeddings);
        using var scope = TensorScope.Begin();
        var (per, score) = Compute(model, Tensor.FromArray(pixels, files.Count, 3, processor.CropHeight, processor.CropWidth), ids, files.Count, progress: progress);
        return (texts, per, score);
    }
}
