// `instaflow eval classifier|twemoji|grid|prompts|clip-score|fid`: trains the Twemoji subcategory classifier, scores
// models with FD-twemoji (Frechet distance of classifier features; not FID), prompt accuracy, pixel-distance retrieval
// of the caption's own image, straightness and time per image, draws sample grids, classifies the images of given prompts, and computes CLIP scores and pytorch-fid's
// FID between two image sets (PNG, JPEG, WebP, BMP or GIF).
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using InstaFlow.Evaluation;
using InstaFlow.IO;
using InstaFlow.Models.Inception;
using InstaFlow.Models;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;
using InstaFlow.Training.TextToImage;

namespace InstaFlow.Cli;

public static class EvalCommand
{
    public static Command Create()
    {
        var cmd = new Command("eval", "Evaluate Twemoji models (classifier, FD-twemoji, prompt accuracy, straightness)");
        cmd.Subcommands.Add(Classifier());
        cmd.Subcommands.Add(Twemoji());
        cmd.Subcommands.Add(Grid());
        cmd.Subcommands.Add(Prompts());
        cmd.Subcommands.Add(ClipScoreCommand());
        cmd.Subcommands.Add(FidCommand());
        return cmd;
    }

    private static Command Classifier()
    {
        var data = new Option<string>("--data") { Description = "Twemoji dataset folder", Required = true };
        var outDir = new Option<string>("--out") { Description = "classifier folder (config.json, model.safetensors)", Required = true };
        var steps = new Option<int>("--steps") { DefaultValueFactory = _ => 1500 };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 64 };
        var lr = new Option<float>("--lr") { DefaultValueFactory = _ => 2e-3f };
        var seed = new Option<ulong>("--seed") { DefaultValueFactory = _ => 0UL };
        var c = new Command("classifier", "Train the subcategory classifier on the training split; report eval-split accuracy") { data, outDir, steps, batch, lr, seed };
        c.SetAction(r =>
        {
            var res = ProgressDisplay.Run("train classifier", p =>
                TwemojiEval.TrainClassifier(r.GetValue(data)!, r.GetValue(outDir)!, r.GetValue(steps), r.GetValue(batch), r.GetValue(lr), r.GetValue(seed), p.Training));
            CliIO.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"classifier: {res.Parameters} parameters, eval accuracy {res.EvalAccuracy:P1}, {res.Seconds:F0} s"));
            return 0;
        });
        return c;
    }

    private static Command Twemoji()
    {
        var data = new Option<string>("--data") { Description = "Twemoji dataset folder (eval split: prompts and real images)", Required = true };
        var classifier = new Option<string>("--classifier") { Description = "classifier folder from eval classifier", Required = true };
        var oneRf = new Option<string?>("--1rf") { Description = "1-RF model folder (1, 4, 25, 100 steps)" };
        var twoRf = new Option<string?>("--2rf") { Description = "2-RF model folder (1, 4, 25 steps)" };
        var distilled = new Option<string?>("--distilled") { Description = "one-step distilled model folder (1 step)" };
        var guidance = new Option<float>("--guidance") { DefaultValueFactory = _ => 2f, Description = "guidance for 1-RF (the one its pairs were made with)" };
        var prompts = new Option<int>("--prompts") { DefaultValueFactory = _ => 0, Description = "evaluate on this many held-out captions, evenly spread (0, the default, or more than there are: all, 190 for Twemoji)" };
        var seed = new Option<ulong>("--seed") { DefaultValueFactory = _ => 1000UL };
        var outPath = new Option<string?>("--json") { Description = "also write the results as JSON here" };
        var threads = new Option<int?>("--threads") { Description = "worker threads (default: all cores)" };
        var c = new Command("twemoji",
            "FD-twemoji, prompt accuracy and pixel retrieval of 1-RF (1/4/25/100 steps), 2-RF (1/4/25) and the distilled model (1); " +
            "give any of the three folders (at least one)")
            { data, classifier, oneRf, twoRf, distilled, guidance, prompts, seed, outPath, threads };
        c.SetAction(r =>
        {
            if (r.GetValue(threads) is int th) Par.Threads = th;
            var protocol = new TwemojiProtocol(r.GetValue(data)!, r.GetValue(classifier)!, r.GetValue(oneRf), r.GetValue(twoRf), r.GetValue(distilled))
            {
                OneRfGuidance = r.GetValue(guidance), Prompts = r.GetValue(prompts), Seed = r.GetValue(seed),
            };
            var report = ProgressDisplay.Run("eval twemoji", p => TwemojiEval.RunProtocol(protocol, p, row => p.Log(Format(row))));
            var o = CliIO.Out;
            var inv = CultureInfo.InvariantCulture;
            o.WriteLine(string.Create(inv, $"classifier eval-split accuracy {report.ClassifierAccuracy:P1} ({report.HeldOutImages} held-out images, {report.Classes} classes); {report.Prompts} prompts"));
            o.WriteLine("| model | steps | guidance | FD-twemoji | prompt accuracy | retrieval top-1 | top-10 | median rank | s / image (batch 32) |");
            o.WriteLine("|---|---|---|---|---|---|---|---|---|");
            foreach (var row in report.Rows) o.WriteLine(Format(row));
            var rr = report.Retrieval;
            o.WriteLine(string.Create(inv,
                $"retrieval: rank of the caption's own image among all {rr.Candidates} dataset images by mean squared RGB error at {rr.Width}x{rr.Height} to the generated image (1 = nearest). " +
                $"The real image itself: rank 1 (top-1 100%). A random image: top-1 {rr.RandomImage.Top1:P2}, top-10 {rr.RandomImage.Top10:P2}, median rank {rr.RandomImage.MedianRank:F1}. " +
                $"The mean of all images for every caption: top-1 {rr.MeanImage.Top1:P1}, top-10 {rr.MeanImage.Top10:P1}, median rank {rr.MeanImage.MedianRank:F1}."));
            if (report.Straightness.Count > 0)
                o.WriteLine(string.Create(inv, $"straightness (25 Euler steps, 32 prompts): {string.Join(", ", report.Straightness.Select(kv =>
                    kv.Key == "1-RF" ? string.Create(inv, $"1-RF (guidance {protocol.OneRfGuidance}) {kv.Value:F4}") : string.Create(inv, $"{kv.Key} {kv.Value:F4}")))}"));
            if (report.OneImageSeconds is double one)
                o.WriteLine(string.Create(inv, $"distilled one-step, one image end to end (text encoder, UNet, VAE decode): {one * 1000:F0} ms"));
            if (r.GetValue(outPath) is string path) report.WriteJson(path);
            return 0;
        });
        return c;
    }

    private static Command Grid()
    {
        var model = new Option<string?>("--model") { Description = "model folder (default: the embedded model)" };
        var prompts = new Option<string>("--prompts") { Description = "prompts separated by ';' (one grid row each)", Required = true };
        var seeds = new Option<int>("--seeds") { DefaultValueFactory = _ => 4, Description = "images per prompt (seeds 0, 1, ...)" };
        var steps = new Option<int?>("--steps") { Description = "Euler steps (default: the model's)" };
        var guidance = new Option<float?>("--guidance") { Description = "guidance scale (default: the model's)" };
        var scale = new Option<int>("--scale") { DefaultValueFactory = _ => 2, Description = "nearest-neighbour upscaling of each cell" };
        var output = new Option<string>("--output", "-o") { Description = "grid PNG", Required = true };
        var c = new Command("grid", "A PNG grid of samples: one row per prompt (printed under it), one column per seed") { model, prompts, seeds, steps, guidance, scale, output };
        c.SetAction(r =>
        {
            var rows = r.GetValue(prompts)!.Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            if (rows.Length == 0) throw new UserException("--prompts has no prompt; separate prompts with ';'");
            if (r.GetValue(seeds) < 1) throw new UserException($"--seeds must be at least 1, got {r.GetValue(seeds)}");
            using var m = SdComponents.Load(ModelLocator.Resolve(r.GetValue(model)));
            var grid = SampleSets.Grid(m, rows, r.GetValue(seeds), r.GetValue(scale), r.GetValue(steps), r.GetValue(guidance));
            Png.Write(r.GetValue(output)!, grid.Width, grid.Height, 3, grid.Rgb);
            for (int y = 0; y < rows.Length; y++) CliIO.Out.WriteLine($"row {y + 1}: {rows[y]}");
            return 0;
        });
        return c;
    }

    private static Command Prompts()
    {
        var model = new Option<string?>("--model") { Description = "model folder (default: the embedded model)" };
        var classifier = new Option<string?>("--classifier") { Description = "classifier folder (default: the model's eval_classifier/)" };
        var prompts = new Option<string>("--prompts") { Description = "prompts separated by ';'", Required = true };
        var seeds = new Option<int>("--seeds") { DefaultValueFactory = _ => 3, Description = "images per prompt (seeds 0, 1, ...)" };
        var steps = new Option<int?>("--steps") { Description = "Euler steps (default: the model's)" };
        var guidance = new Option<float?>("--guidance") { Description = "guidance scale (default: the model's)" };
        var c = new Command("prompts", "Generate each prompt with seeds 0..N-1 and print the subcategory the classifier puts each image in")
            { model, classifier, prompts, seeds, steps, guidance };
        c.SetAction(r =>
        {
            var modelDir = ModelLocator.Resolve(r.GetValue(model));
            var list = r.GetValue(prompts)!.Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            if (list.Length == 0) throw new UserException("--prompts has no prompt; separate prompts with ';'");
            int n = r.GetValue(seeds);
            if (n < 1) throw new UserException($"--seeds must be at least 1, got {n}");
            var clfDir = r.GetValue(classifier) ?? Path.Combine(modelDir, "eval_classifier");
            if (!Directory.Exists(clfDir)) throw new UserException($"{clfDir}: no classifier folder; pass --classifier (train one with instaflow eval classifier)");
            var clf = TwemojiClassifier.Load(clfDir);
            using var m = SdComponents.Load(modelDir);
            var verdicts = SampleSets.Classify(m, clf, list, n, r.GetValue(steps), r.GetValue(guidance));
            CliIO.Out.WriteLine("| prompt | seed | subcategory | probability |");
            CliIO.Out.WriteLine("|---|---|---|---|");
            foreach (var v in verdicts)
                CliIO.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {v.Prompt} | {v.Seed} | {v.Class} | {v.Probability:F3} |"));
            return 0;
        });
        return c;
    }

    private static Command ClipScoreCommand()
    {
        var clip = new Option<string>("--clip") { Description = "transformers CLIPModel folder (config.json, model.safetensors, preprocessor_config.json)", Required = true };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "folder with vocab.json and merges.txt (default: the --clip folder)" };
        var prompt = new Option<string?>("--prompt") { Description = "score every image against this prompt (default: each PNG's own \"prompt\" text chunk, as generate writes it; other formats have none)" };
        var images = new Argument<string[]>("images") { Description = "PNG, JPEG, WebP, BMP or GIF files, or folders of them", Arity = ArgumentArity.OneOrMore };
        var c = new Command("clip-score", "CLIP score of images against their prompts (torchmetrics' definition: 100 x cosine, the mean clamped at 0)")
            { clip, tokenizer, prompt, images };
        c.SetAction(r =>
        {
            var dir = r.GetValue(clip)!;
            var (model, _) = Models.Clip.ClipModel.Load(dir);
            var processor = ClipImageProcessorConfig.Load(Path.Combine(dir, "preprocessor_config.json"));
            var tok = Models.Clip.ClipTokenizer.FromDirectory(r.GetValue(tokenizer) ?? dir);
            var files = ImageFile.ListImages(r.GetValue(images)!).ToArray();
            if (files.Length == 0) throw new UserException($"{string.Join(" ", r.GetValue(images)!)}: no images (looked for {string.Join(", ", ImageFile.Extensions)})");
            var (texts, per, score) = ProgressDisplay.Run("clip score", p => ClipScore.ScoreFiles(model, tok, processor, files, r.GetValue(prompt), p));
            for (int i = 0; i < files.Length; i++) CliIO.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{files[i]}\t{per[i]:F4}\t{texts[i]}"));
            CliIO.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"CLIP score: {score:F4} ({files.Length} images)"));
            return 0;
        });
        return c;
    }

    private static Command FidCommand()
    {
        var weights = new Option<string>("--weights") { Description = "FID Inception weights (pt_inception-2015-12-05 as safetensors)", Required = true };
        Option<string[]> Set(string name, string what) => new(name)
        {
            Description = $"{what} images: PNG, JPEG, WebP, BMP or GIF files, or folders of them", Required = true, AllowMultipleArgumentsPerToken = true,
        };
        var real = Set("--real", "reference");
        var fake = Set("--fake", "generated");
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 32, Description = "images per forward pass (does not change the result)" };
        var c = new Command("fid", "FID (pytorch-fid 0.3.0: Inception pool3 features, Frechet distance) between two sets of images") { weights, real, fake, batch };
        c.SetAction(r =>
        {
            int b = r.GetValue(batch);
            if (b < 1) throw new UserException($"--batch must be at least 1, got {b}");
            var sets = new[] { ("--real", r.GetValue(real)!), ("--fake", r.GetValue(fake)!) }.Select(s =>
            {
                var files = ImageFile.ListImages(s.Item2);
                if (files.Count < 2)
                    throw new UserException($"{s.Item1} {string.Join(" ", s.Item2)}: {files.Count} images; FID needs at least 2 per set (a covariance)");
                return files;
            }).ToArray();
            var (model, _) = FidInceptionV3.Load(r.GetValue(weights)!);
            var feats = ProgressDisplay.Run("fid features", p =>
                new[] { Fid.Features(model, sets[0], b, p.Stage("real")), Fid.Features(model, sets[1], b, p.Stage("generated")) });
            double fid = Fid.Compute(feats[0], sets[0].Count, feats[1], sets[1].Count, model.FeatureSize);
            CliIO.Err.WriteLine($"{sets[0].Count} real and {sets[1].Count} generated images, {model.FeatureSize} features");
            CliIO.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"FID: {fid:F6}"));
            return 0;
        });
        return c;
    }

    private static string Format(EvalRow r)
    {
        var inv = CultureInfo.InvariantCulture;
        string steps = r.Steps == 0 ? "-" : r.Steps.ToString(inv), guidance = r.Guidance > 1 ? r.Guidance.ToString("G3", inv) : "off";
        string retrieval = r.Retrieval is { } q ? string.Create(inv, $"{q.Top1:P1} | {q.Top10:P1} | {q.MedianRank:F1}") : "- | - | -";
        return string.Create(inv, $"| {r.Name} | {steps} | {guidance} | {r.FdTwemoji:F2} | {r.PromptAccuracy:P1} | {retrieval} | {r.SecondsPerImage:F4} |");
    }
}
