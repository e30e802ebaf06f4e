// Evaluation of the Twemoji models: the classifier's training and held-out accuracy, FD-twemoji (Frechet distance of
// classifier features, generated vs held-out real images; not FID), prompt accuracy, straightness, time per image.
using System.Diagnostics;
using InstaFlow.Flow;
using InstaFlow.IO;
using InstaFlow.Models;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;
using InstaFlow.Training;
using InstaFlow.Training.TextToImage;

namespace InstaFlow.Evaluation;

public sealed record ClassifierResult(double EvalAccuracy, double Seconds, long Parameters);

/// <summary>One generation setting: a model folder sampled with this many Euler steps and this guidance.</summary>
public sealed record EvalSetting(string Name, string ModelDir, int Steps, float Guidance);

public sealed record EvalRow(string Name, int Steps, float Guidance, double FdTwemoji, double PromptAccuracy, double SecondsPerImage);

public static class TwemojiEval
{
    public static ClassifierResult TrainClassifier(string dataDir, string outDir, int steps, int batch, float lr, ulong seed, bool progress)
    {
        var clock = Stopwatch.StartNew();
        var data = TwemojiImages.Load(dataDir);
        var model = new TwemojiClassifier([32, 64, 96, 128], data.Subcategories);
        model.InitDefault(seed);
        Directory.CreateDirectory(outDir);
        var trainer = new Trainer(model, new ClassifierObjective(model, data.Images, data.Labels, data.TrainIndices, batch), new TrainerOptions
        {
            LearningRate = lr, WarmupSteps = Math.Min(50, steps), WeightDecay = 1e-4f, Seed = seed, LogPath = Path.Combine(outDir, "train_log.jsonl"),
            ProgressLabel = progress ? "classifier" : null,
        });
        trainer.Train(steps);
        model.Save(outDir);
        var (_, preds) = model.Apply(TwemojiImages.Gather(data.Images, data.EvalIndices));
        double acc = data.EvalIndices.Select((i, j) => preds[j] == data.Labels[i] ? 1.0 : 0.0).Average();
        var result = new ClassifierResult(acc, clock.Elapsed.TotalSeconds, model.ParameterCount);
        DiffusersWriter.WriteJson(Path.Combine(outDir, "result.json"), new
        {
            eval_accuracy = acc, eval_images = data.EvalIndices.Length, classes = data.Subcategories.Length, steps, batch_size = batch,
            learning_rate = lr, seed, seconds = result.Seconds, parameters = result.Parameters,
        });
        return result;
    }

    /// <summary>
    /// Generates one image per prompt (prompt i uses seed baseSeed + i), then FD-twemoji against the real images' features
    /// and the fraction classified into the prompt's subcategory.
    /// </summary>
    public static EvalRow Evaluate(EvalSetting s, SdComponents model, TwemojiClassifier classifier, string[] prompts, int[] labels,
        float[] realFeatures, int realCount, ulong baseSeed, int batch = 32)
    {
        var pipe = new RectifiedFlowPipeline(model);
        var feats = new List<float>();
        int correct = 0;
        var clock = Stopwatch.StartNew();
        double genSeconds = 0;
        for (int start = 0; start < prompts.Length; start += batch)
        {
            using var scope = TensorScope.Begin();
            int b = Math.Min(batch, prompts.Length - start);
            var noise = Tensor.Empty(b, model.Unet.Config.InChannels, model.Unet.Config.SampleSize, model.Unet.Config.SampleSize);
            long row = noise.Numel / b;
            for (int i = 0; i < b; i++)
                new Tensors.Random.TorchGenerator(baseSeed + (ulong)(start + i)).FillNormal(noise.Span.Slice((int)(i * row), (int)row));
            clock.Restart();
            var res = pipe.Generate(new GenerationRequest { Prompts = prompts[start..(start + b)], Steps = s.Steps, Guidance = s.Guidance, InitLatents = noise });
            genSeconds += clock.Elapsed.TotalSeconds;
            res.FinalLatents.Dispose();
            var (f, preds) = classifier.Apply(ImageTensors.ToTensorSigned(res.ImagesHwc, res.Width, res.Height));
            feats.AddRange(f);
            for (int i = 0; i < b; i++) if (preds[i] == labels[start + i]) correct++;
        }
        double fd = FrechetDistance.Compute(feats.ToArray(), prompts.Length, realFeatures, realCount, classifier.FeatureSize);
        return new EvalRow(s.Name, s.Steps, s.Guidance, fd, (double)correct / prompts.Length, genSeconds / prompts.Length);
    }

    /// <summary>
    /// The floor of FD-twemoji at this sample size: n real training images (evenly spread over the training split) in
    /// place of generated ones. A generator that reproduced its training data exactly would score this, not zero.
    /// </summary>
    public static EvalRow RealReference(Tensor images, int[] labels, int[] trainIndices, TwemojiClassifier classifier, int n,
        float[] realFeatures, int realCount)
    {
        var chosen = Enumerable.Range(0, n).Select(i => trainIndices[(int)((long)i * trainIndices.Length / n)]).ToArray();
        var (f, preds) = classifier.Apply(TwemojiImages.Gather(images, chosen));
        double acc = chosen.Select((i, j) => preds[j] == labels[i] ? 1.0 : 0.0).Average();
        double fd = FrechetDistance.Compute(f, n, realFeatures, realCount, classifier.FeatureSize);
        return new EvalRow("real training images", 0, 0f, fd, acc, 0);
    }

    /// <summary>
    /// Straightness S = integral E||(Z1 - Z0) - v(Z_t, t)||^2 dt of the model's (guided) field along its own Euler
    /// trajectories from fixed noise, conditioned on the prompts: 0 for perfectly straight flows.
    /// </summary>
    public static double Straightness(SdComponents model, string[] prompts, float guidance, int steps, ulong seed)
    {
        var net = new TextToImageVelocity(model.TextEncoder, model.Unet);
        int len = model.TextEncoder.Config.MaxPositionEmbeddings;
        using var scope = TensorScope.Begin();
        var cond = Tensor.FromArray(prompts.SelectMany(p => CaptionTable.Tokenize(model.Tokenizer, p, len)).ToArray(), prompts.Length, len);
        var nullRow = CaptionTable.Tokenize(model.Tokenizer, "", len);
        var nullCond = Tensor.FromArray(Enumerable.Range(0, prompts.Length).SelectMany(_ => nullRow).ToArray(), prompts.Length, len);
        var flow = new FlowModel(net, FlowConvention.InstaFlow);
        var v = guidance > 1 ? flow.Field(cond, guidance, nullCond) : flow.Field(cond);
        var x0 = new Tensors.Random.TorchGenerator(seed).Randn(prompts.Length, model.Unet.Config.InChannels, model.Unet.Config.SampleSize, model.Unet.Config.SampleSize);
        return Flow.Straightness.Measure(v, x0, new EulerSampler(steps));
    }
}
