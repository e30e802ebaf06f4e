// FID as pytorch-fid computes it: pool3 features of the FID Inception for two sets of images (PNG, JPEG, WebP, BMP or
// GIF, converted to RGB as PIL's convert("RGB") does, each resized to 299x299 on its own), then the Frechet distance.
using InstaFlow.IO;
using InstaFlow.Models.Inception;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;

namespace InstaFlow.Evaluation;

public static class Fid
{
    /// <summary>
    /// pool3 features of the images, [files.Count, FeatureSize] row-major, in double as pytorch-fid keeps them.
    /// Progress counts images done after each batch.
    /// </summary>
    public static double[] Features(FidInceptionV3 model, IReadOnlyList<string> files, int batch, IProgress<JobProgress>? progress = null)
    {
        if (batch < 1) throw new InvalidInputException($"batch size must be at least 1, got {batch}");
        int d = model.FeatureSize;
        var features = new double[(long)files.Count * d];
        using var noGrad = GradMode.NoGrad();
        for (int start = 0; start < files.Count; start += batch)
        {
            using var scope = TensorScope.Begin();
            int n = Math.Min(batch, files.Count - start);
            var images = new Tensor[n];
            for (int i = 0; i < n; i++)
            {
                var png = ImageFile.Read(files[start + i]);
                images[i] = FidInceptionV3.Preprocess(ImageTensors.ToTensorUnit(png.Pixels, 1, png.Width, png.Height));
            }
            var pool3 = model.ForwardPreprocessed(Ops.Concat(images, 0)).Pool3.Span;
            for (int i = 0; i < pool3.Length; i++) features[(long)start * d + i] = pool3[i];
            progress?.Report(new JobProgress(start + n, files.Count));
        }
        return features;
    }

    /// <summary>FID between two feature sets [n, d] (pytorch-fid's calculate_frechet_distance of their means and N-1 covariances).</summary>
    public static double Compute(double[] real, int realCount, double[] fake, int fakeCount, int d) =>
        FrechetDistance.Compute(real, realCount, fake, fakeCount, d);
}
