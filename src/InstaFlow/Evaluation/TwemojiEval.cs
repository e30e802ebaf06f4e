// Evaluation of the Twemoji models: the classifier's training and held-out accuracy, FD-twemoji (Frechet distance of
// classifier features, generated vs held-out real images; not FID), prompt accuracy, retrieval of the caption's own
// image by pixel distance among all dataset images, straightness, time per image.
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

/// <summary>One row of the protocol; Retrieval is null where it has no meaning (the real-data FD floor).</summary>
public sealed record EvalRow(string Name, int Steps, float Guidance, double FdTwemoji, double PromptAccuracy, double SecondsPerImage,
    RetrievalScore? Retrieval = null);

public static class TwemojiEval
{
    /// <summary>Trains the subcategory classifier on the training split, saves it in outDir and returns its eval-split accuracy.</summary>
    public static ClassifierResult TrainClassifier(string dataDir, string outDir, int steps, int batch, float lr, ulong seed,
        IProgress<TrainingProgress>? progress = null)
    {
        var clock = Stopwatch.StartNew();
        var data = TwemojiImages.Load(dataDir);
        var model = new TwemojiClassifier([32, 64, 96, 128], data.Subcategories);
        model.InitDefault(seed);
        Directory.CreateDirectory(outDir);
        var trainer = new Trainer(model, new ClassifierObjective(model, data.Images, data.Labels, data.TrainIndices, batch), new TrainerOptions
        {
            LearningRate = lr, WarmupSteps = Math.Min(50, steps), WeightDecay = 1e-4f, Seed = seed, LogPath = Path.Combine(outDir, "train_log.jsonl"),
            Progress = progress,
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
    /// and the fraction classified into the prompt's subcategory; with a retrieval set, also the rank of each prompt's own
    /// image (candidate trueIndices[i]) by pixel distance to its generated image. Progress counts generated images.
    /// </summary>
    public static EvalRow Evaluate(EvalSetting s, SdComponents model, TwemojiClassifier classifier, string[] prompts, int[] labels,
        float[] realFeatures, int realCount, ulong baseSeed, int batch = 32, IProgress<JobProgress>? progress = null,
        PixelRetrieval? retrieval = null, int[]? trueIndices = null)
    {
        if (retrieval != null && (trueIndices == null || trueIndices.Length != prompts.Length))
            throw new ArgumentException("retrieval needs one true candidate index per prompt", nameof(trueIndices));
        var pipe = new RectifiedFlowPipeline(model);
        var feats = new List<float>();
        var ranks = new List<int>();
        int correct = 0;
        var clock = Stopwatch.StartNew();
        double genSeconds = 0;
        for (int start = 0; start < prompts.Length; start += batch)
        {
            using var scope = TensorScope.Begin();
            int b = Math.Min(batch, prompts.Length - start);
            clock.Restart();
            // prompt k starts from the seed policy's noise for seed baseSeed + k, whatever the batch
            var res = pipe.Generate(new GenerationRequest { Prompts = prompts[start..(start + b)], Steps = s.Steps, Guidance = s.Guidance, Seed = baseSeed + (ulong)start });
            genSeconds += clock.Elapsed.TotalSeconds;
            res.FinalLatents.Dispose();
            var (f, preds) = classifier.Apply(ImageTensors.ToTensorSigned(res.ImagesHwc, res.Width, res.Height));
            feats.AddRange(f);
            for (int i = 0; i < b; i++) if (preds[i] == labels[start + i]) correct++;
            if (retrieval != null) ranks.AddRange(retrieval.Ranks(res.ImagesHwc, trueIndices.AsSpan(start, b).ToArray()));
            progress?.Report(new JobProgress(start + b, prompts.Length, s.Name));
        }
        double fd = FrechetDistance.Compute(feats.ToArray(), prompts.Length, realFeatures, realCount, classifier.FeatureSize);
        return new EvalRow(s.Name, s.Steps, s.Guidance, fd, (double)correct / prompts.Length, genSeconds / prompts.Length,
            retrieval == null ? null : RetrievalScore.FromRanks(ranks));
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
        using var scope = TensorScope.Begin();
        var pipe = new RectifiedFlowPipeline(model);
        var v = RectifiedFlowPipeline.Field(model.Denoiser, pipe.Encode(prompts, null, guidance), guidance);
        var x0 = SeedPolicy.Noise(seed, prompts.Length, [model.Unet.Config.InChannels, model.Unet.Config.SampleSize, model.Unet.Config.SampleSize]);
        return Flow.Straightness.Measure(v, x0, new EulerSampler(steps));
    }

    /// <summary>
    /// The whole FD-twemoji protocol of the Twemoji recipe: the real-data floor, then for each stage folder given, 1-RF at
    /// 1/4/25/100 steps (with the guidance its pairs were made with), 2-RF at 1/4/25 and the distilled model at 1 step, on
    /// n evenly spread held-out captions (0: all); retrieval of each caption's own image among all dataset images;
    /// straightness of 1-RF and 2-RF on the first 32; one-image latency of the distilled model. rowDone receives each
    /// row as it is done.
    /// </summary>
    public static TwemojiReport RunProtocol(TwemojiProtocol o, IProgress<JobProgress>? progress = null, Action<EvalRow>? rowDone = null)
    {
        if (o.Prompts < 0) throw new InvalidInputException($"--prompts must be 0 (all held-out captions) or a positive count, got {o.Prompts}");
        var stages = new[] { ("--1rf", o.OneRfDir), ("--2rf", o.TwoRfDir), ("--distilled", o.DistilledDir) };
        if (stages.All(st => st.Item2 == null)) throw new InvalidInputException("eval twemoji: give at least one model folder (--1rf, --2rf or --distilled)");
        // before the long loading and generating, so a typo does not cost the stages evaluated before it
        foreach (var (option, dir) in stages)
            if (dir != null && !Directory.Exists(dir)) throw new InvalidInputException($"{option} {dir}: no such model folder");
        var clf = TwemojiClassifier.Load(o.ClassifierDir);
        var items = TwemojiImages.Load(o.DataDir);
        var evalIdx = items.EvalIndices;
        if (evalIdx.Length < 2) throw new InvalidInputException($"{o.DataDir}: {evalIdx.Length} held-out images; FD-twemoji needs at least 2");
        int n = o.Prompts > 0 && o.Prompts < evalIdx.Length ? o.Prompts : evalIdx.Length;
        var chosen = Enumerable.Range(0, n).Select(i => evalIdx[(int)((long)i * evalIdx.Length / n)]).ToArray();
        var texts = chosen.Select(i => items.Items[i].Caption).ToArray();
        var labels = chosen.Select(i => items.Labels[i]).ToArray();
        var (realFeats, realPreds) = clf.Apply(TwemojiImages.Gather(items.Images, evalIdx));
        double clfAcc = evalIdx.Select((i, j) => realPreds[j] == items.Labels[i] ? 1.0 : 0.0).Average();
        // every dataset image (training and held-out) is a candidate; the caption's own image is the one to find
        var retrieval = PixelRetrieval.FromSignedImages(items.Images);
        var mean = retrieval.MeanImage();
        var reference = new RetrievalReference(retrieval.Count, items.Images.Dim(3), items.Images.Dim(2),
            RetrievalScore.FromRanks(Enumerable.Repeat(1, n).ToArray()), RetrievalScore.Random(retrieval.Count),
            RetrievalScore.FromRanks(retrieval.Ranks(chosen.Select(_ => mean).ToArray(), chosen)));
        var settings = new List<EvalSetting>();
        if (o.OneRfDir != null) foreach (int s in new[] { 1, 4, 25, 100 }) settings.Add(new EvalSetting("1-RF", o.OneRfDir, s, o.OneRfGuidance));
        if (o.TwoRfDir != null) foreach (int s in new[] { 1, 4, 25 }) settings.Add(new EvalSetting("2-RF", o.TwoRfDir, s, 0f));
        if (o.DistilledDir != null) settings.Add(new EvalSetting("2-RF distilled", o.DistilledDir, 1, 0f));

        var rows = new List<EvalRow> { RealReference(items.Images, items.Labels, items.TrainIndices, clf, n, realFeats, evalIdx.Length) };
        rowDone?.Invoke(rows[0]);
        var models = new Dictionary<string, SdComponents>();
        try
        {
            foreach (var s in settings)
            {
                if (!models.TryGetValue(s.ModelDir, out var m)) models[s.ModelDir] = m = SdComponents.Load(s.ModelDir);
                var stage = string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{s.Name}, {s.Steps} steps");
                rows.Add(Evaluate(s, m, clf, texts, labels, realFeats, evalIdx.Length, o.Seed,
                    progress: progress == null ? null : new Progress<JobProgress>(pr => progress.Report(pr with { Stage = stage })),
                    retrieval: retrieval, trueIndices: chosen));
                rowDone?.Invoke(rows[^1]);
            }
            var sp = texts.Take(32).ToArray();
            var straight = new Dictionary<string, double>();
            if (o.OneRfDir != null) straight["1-RF"] = Straightness(models[o.OneRfDir], sp, o.OneRfGuidance, 25, o.Seed);
            if (o.TwoRfDir != null) straight["2-RF"] = Straightness(models[o.TwoRfDir], sp, 0f, 25, o.Seed);
            double? oneImage = o.DistilledDir != null ? SingleImageSeconds(models[o.DistilledDir]) : null;
            return new TwemojiReport(clfAcc, evalIdx.Length, items.Subcategories.Length, n, o.Seed, rows, straight, oneImage, reference) { Captions = texts };
        }
        finally
        {
            foreach (var m in models.Values) m.Dispose();
        }
    }

    /// <summary>Median over five runs of one single-image generation (after a warm-up run).</summary>
    public static double SingleImageSeconds(SdComponents model)
    {
        var pipe = new RectifiedFlowPipeline(model);
        var times = new List<double>();
        for (int i = 0; i < 6; i++)
        {
            var clock = Stopwatch.StartNew();
            pipe.Generate(new GenerationRequest { Prompts = ["red apple"], Steps = 1, Seed = (ulong)i }).FinalLatents.Dispose();
            if (i > 0) times.Add(clock.Elapsed.TotalSeconds);
        }
        return times.Order().ElementAt(times.Count / 2);
    }
}

/// <summary>
/// What <see cref="TwemojiEval.RunProtocol"/> evaluates: data, classifier, the stages' folders (null: skip that stage;
/// at least one), prompts, seed.
/// </summary>
public sealed record TwemojiProtocol(string DataDir, string ClassifierDir, string? OneRfDir, string? TwoRfDir, string? DistilledDir)
{
    /// <summary>Guidance for 1-RF: the one its reflow pairs were made with.</summary>
    public float OneRfGuidance { get; init; } = 2f;
    /// <summary>Held-out captions to use, evenly spread (0: all).</summary>
    public int Prompts { get; init; }
    public ulong Seed { get; init; } = 1000;
}

/// <summary>
/// What the retrieval numbers compare with: the candidate count and image size, the real held-out image itself (rank
/// 1, the floor), a random image (expected values) and the per-pixel mean of all images given for every caption.
/// </summary>
public sealed record RetrievalReference(int Candidates, int Width, int Height, RetrievalScore RealImage, RetrievalScore RandomImage, RetrievalScore MeanImage);

/// <summary>
/// The protocol's results; <see cref="WriteJson"/> stores them as the recipe's records do. Straightness holds the
/// stages evaluated of 1-RF and 2-RF; OneImageSeconds is the distilled model's latency (null when it was not evaluated).
/// </summary>
public sealed record TwemojiReport(double ClassifierAccuracy, int HeldOutImages, int Classes, int Prompts, ulong Seed,
    IReadOnlyList<EvalRow> Rows, IReadOnlyDictionary<string, double> Straightness, double? OneImageSeconds, RetrievalReference Retrieval)
{
    /// <summary>The held-out captions evaluated, in the order of each row's retrieval ranks.</summary>
    public IReadOnlyList<string> Captions { get; init; } = [];

    public void WriteJson(string path) => DiffusersWriter.WriteJson(path, new
    {
        classifier_eval_accuracy = ClassifierAccuracy, prompts = Prompts, seed = Seed,
        rows = Rows.Select(x => new
        {
            model = x.Name, steps = x.Steps, guidance = x.Guidance, fd_twemoji = x.FdTwemoji, prompt_accuracy = x.PromptAccuracy, seconds_per_image = x.SecondsPerImage,
            retrieval_top1 = x.Retrieval?.Top1, retrieval_top10 = x.Retrieval?.Top10, retrieval_median_rank = x.Retrieval?.MedianRank,
            retrieval_ranks = x.Retrieval?.Ranks,
        }),
        captions = Captions,
        retrieval = new
        {
            distance = $"mean squared error of 8-bit RGB pixels at {Retrieval.Width}x{Retrieval.Height}; rank 1 = nearest, ties counted in the true image's favour",
            candidates = Retrieval.Candidates,
            real_image = Json(Retrieval.RealImage), random_image = Json(Retrieval.RandomImage), mean_image = Json(Retrieval.MeanImage),
        },
        straightness = Straightness, one_image_seconds = OneImageSeconds,
    });

    private static object Json(RetrievalScore r) => new { top1 = r.Top1, top10 = r.Top10, median_rank = r.MedianRank };
}
