// `instaflow train vae|flow|pairs|reflow|distill`: the Twemoji InstaFlow recipe stage by stage, each stage writing a
// folder (diffusers layout) and a JSONL training log, all resumable.
using System.CommandLine;
using System.Globalization;
using InstaFlow.Tensors;
using InstaFlow.Training;
using InstaFlow.Training.TextToImage;

namespace InstaFlow.Cli;

public static class TrainCommand
{
    public static Command Create()
    {
        var cmd = new Command("train", "Train the Twemoji text-to-image model with the InstaFlow recipe (vae, flow, pairs, reflow, distill)");
        cmd.Subcommands.Add(Vae());
        cmd.Subcommands.Add(Flow());
        cmd.Subcommands.Add(Pairs());
        cmd.Subcommands.Add(Reflow());
        cmd.Subcommands.Add(Distill());
        return cmd;
    }

    internal static Option<int?> Threads() => new("--threads") { Description = "worker threads (default: all cores)" };

    internal static void UseThreads(ParseResult r, Option<int?> threads)
    {
        if (r.GetValue(threads) is int t) Par.Threads = t;
    }

    /// <summary>--grad-accum, shared by every trainer that can split its batch.</summary>
    internal static Option<int> GradAccum() => new("--grad-accum")
    {
        DefaultValueFactory = _ => 1,
        Description = "pieces each rank cuts its share of the batch into (one forward/backward each): a large --batch in less memory; " +
            "under mpirun/srun the batch is split over the ranks too, so the result does not depend on the number of ranks",
    };

    private static Command Vae()
    {
        var data = new Option<string>("--data") { Description = "Twemoji dataset folder (instaflow data twemoji)", Required = true };
        var outDir = new Option<string>("--out") { Description = "output folder (vae/, checkpoints/, train_log.jsonl, result.json)", Required = true };
        var steps = new Option<int>("--steps") { DefaultValueFactory = _ => 2000, Description = "optimizer steps" };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 16, Description = "images per step" };
        var lr = new Option<float>("--lr") { DefaultValueFactory = _ => 1e-3f, Description = "AdamW learning rate" };
        var kl = new Option<float>("--kl") { DefaultValueFactory = _ => 1e-4f, Description = "KL weight (per-element means)" };
        var channels = new Option<string>("--channels") { DefaultValueFactory = _ => "32,64,64", Description = "block_out_channels" };
        var groups = new Option<int>("--groups") { DefaultValueFactory = _ => 8, Description = "norm_num_groups" };
        var seed = new Option<ulong>("--seed") { DefaultValueFactory = _ => 0UL };
        var warmup = new Option<int?>("--warmup") { Description = "linear warmup steps (default: min(100, steps / 10))" };
        var decayFrom = new Option<int?>("--decay-from")
        {
            Description = "cosine learning-rate decay from this step to --min-lr at --steps (default: constant lr after warmup; " +
                "the schedule depends on --steps, so keep --steps when resuming inside the decay)",
        };
        var minLr = new Option<float?>("--min-lr") { Description = "learning rate at the end of the decay (default: lr / 10)" };
        var ema = new Option<float?>("--ema")
        {
            Description = "EMA decay (e.g. 0.999): export and measure the averaged weights (default: none); " +
                "resuming a checkpoint written without it starts the average from the resumed weights",
        };
        var evalEvery = new Option<int>("--eval-every")
        {
            DefaultValueFactory = _ => 0,
            Description = "steps between held-out PSNR measurements, logged to train_log.jsonl and shown in the progress (0: only at the end)",
        };
        var checkpointEvery = new Option<int>("--checkpoint-every") { DefaultValueFactory = _ => 200, Description = "steps between checkpoints (resume with the same command)" };
        var threads = Threads();
        var c = new Command("vae", "Train the AutoencoderKL (64x64x3 <-> 16x16x4 with three levels)")
            { data, outDir, steps, batch, lr, kl, channels, groups, seed, warmup, decayFrom, minLr, ema, evalEvery, checkpointEvery, threads };
        c.SetAction(r =>
        {
            UseThreads(r, threads);
            var options = new VaeTrainingOptions
            {
                DataDir = r.GetValue(data)!, OutDir = r.GetValue(outDir)!, Steps = r.GetValue(steps), BatchSize = r.GetValue(batch),
                LearningRate = r.GetValue(lr), KlWeight = r.GetValue(kl), BlockOutChannels = Ints(r.GetValue(channels)!),
                NormNumGroups = r.GetValue(groups), Seed = r.GetValue(seed), WarmupSteps = r.GetValue(warmup), DecayFrom = r.GetValue(decayFrom),
                MinLearningRate = r.GetValue(minLr), EmaDecay = r.GetValue(ema), EvalEvery = r.GetValue(evalEvery), CheckpointEvery = r.GetValue(checkpointEvery),
            };
            // before the data is read
            options.Validate();
            var res = ProgressDisplay.Run("train vae", p => VaeTraining.Run(options with { Progress = p.Training }, p.Log));
            CliIO.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"vae: {res.Parameters} parameters, eval PSNR {res.EvalPsnr:F2} dB{(res.LivePsnr is double live ? $" (EMA weights; raw weights {live:F2} dB)" : "")}, scaling_factor {res.ScalingFactor:G6}, {res.Seconds:F0} s"));
            return 0;
        });
        return c;
    }

    /// <summary>The options every flow stage has (steps, batch, learning rate, EMA, seed) and how to read them.</summary>
    private sealed class StageArgs
    {
        public readonly Option<string> Data = new("--data") { Description = "Twemoji dataset folder (instaflow data twemoji)", Required = true };
        public readonly Option<string> Out = new("--out") { Description = "output folder (model/, checkpoints/, train_log.jsonl, result.json)", Required = true };
        public readonly Option<int> Steps;
        public readonly Option<int> Batch = new("--batch") { DefaultValueFactory = _ => 32, Description = "samples per step" };
        public readonly Option<float> Lr;
        public readonly Option<float> Ema = new("--ema") { DefaultValueFactory = _ => 0.998f, Description = "EMA decay of the saved weights (0: none)" };
        public readonly Option<ulong> Seed = new("--seed") { DefaultValueFactory = _ => 0UL };
        public readonly Option<int?> Threads = Threads();
        public readonly Option<int> CheckpointEvery = new("--checkpoint-every") { DefaultValueFactory = _ => 100, Description = "steps between checkpoints (resume with the same command)" };
        public readonly Option<int> GradAccum = TrainCommand.GradAccum();
        public readonly Option<int?> DecayFrom = new("--decay-from")
        {
            Description = "cosine learning-rate decay from this step to --min-lr at --steps (default: constant lr after warmup; " +
                "the schedule depends on --steps, so keep --steps when resuming inside the decay)",
        };
        public readonly Option<float?> MinLr = new("--min-lr") { Description = "learning rate at the end of the decay (default: lr / 10)" };

        public StageArgs(int steps, float lr)
        {
            Steps = new("--steps") { DefaultValueFactory = _ => steps, Description = "optimizer steps" };
            Lr = new("--lr") { DefaultValueFactory = _ => lr, Description = "AdamW learning rate" };
        }

        public Command Command(string name, string description, params Option[] extra)
        {
            var c = new Command(name, description);
            foreach (var o in new Option[] { Data, Out, Steps, Batch, Lr, Ema, Seed, Threads, CheckpointEvery, GradAccum, DecayFrom, MinLr }.Concat(extra)) c.Options.Add(o);
            return c;
        }

        /// <summary>The stage's options, reporting every step to the display.</summary>
        public StageOptions Read(ParseResult r, ProgressDisplay display)
        {
            UseThreads(r, Threads);
            float ema = r.GetValue(Ema);
            int steps = r.GetValue(Steps);
            float lr = r.GetValue(Lr);
            int? decayFrom = r.GetValue(DecayFrom);
            float? minLr = r.GetValue(MinLr);
            TrainerOptions.ValidateDecay(steps, lr, decayFrom, minLr);
            var world = CliWorld.Get();
            return new StageOptions
            {
                DataDir = r.GetValue(Data)!, OutDir = r.GetValue(Out)!, Steps = steps, BatchSize = r.GetValue(Batch),
                LearningRate = lr, DecayFrom = decayFrom, MinLearningRate = minLr, EmaDecay = ema > 0 ? ema : null, Seed = r.GetValue(Seed),
                Progress = CliWorld.Speaks ? display.Training : null, CheckpointEvery = r.GetValue(CheckpointEvery),
                World = world, GradAccum = r.GetValue(GradAccum),
            };
        }
    }

    private static void Report(StageResult res)
    {
        if (CliWorld.Speaks) CliIO.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            // a run that only finishes a resumed checkpoint takes no step and has no loss of its own
            $"{res.ModelDir}: {res.Parameters} parameters, {(float.IsFinite(res.FinalLoss) ? $"final loss {res.FinalLoss:F4}" : "no step taken (already at --steps)")}, {res.Seconds:F0} s"));
    }

    private static Command Flow()
    {
        var a = new StageArgs(2000, 5e-4f);
        var vae = new Option<string>("--vae") { Description = "VAE folder (the vae/ written by train vae)", Required = true };
        var tokenizer = new Option<string>("--tokenizer") { Description = "CLIP tokenizer folder (vocab.json, merges.txt)", Required = true };
        var textHidden = new Option<int>("--text-hidden") { DefaultValueFactory = _ => 64, Description = "text encoder width (= UNet cross_attention_dim)" };
        var textLayers = new Option<int>("--text-layers") { DefaultValueFactory = _ => 2 };
        var maxTokens = new Option<int>("--max-tokens") { DefaultValueFactory = _ => 16, Description = "prompt length incl. start/end tokens (max_position_embeddings)" };
        var channels = new Option<string>("--channels") { DefaultValueFactory = _ => "32,64,64", Description = "UNet block_out_channels" };
        var evalEvery = new Option<int>("--eval-every")
        {
            DefaultValueFactory = _ => 0,
            Description = "steps between held-out loss measurements (the eval split, fixed draws; EMA weights when --ema), in train_log.jsonl and the progress (0: none)",
        };
        var balance = Balance("training image", "image");
        var c = a.Command("flow", "1-RF: text encoder + UNet from scratch on cached VAE latents, caption dropout 0.1", vae, tokenizer, textHidden, textLayers, maxTokens, channels, evalEvery, balance);
        c.SetAction(r =>
        {
            var arch = new FlowArchitecture
            {
                TextHidden = r.GetValue(textHidden), TextLayers = r.GetValue(textLayers), MaxTokens = r.GetValue(maxTokens), UnetChannels = Ints(r.GetValue(channels)!),
            };
            arch.Validate();
            int every = r.GetValue(evalEvery);
            if (every < 0) throw new UserException($"--eval-every cannot be negative (0: none), got {every}");
            var sampling = r.GetValue(balance) ? CaptionSampling.PerEmoji : CaptionSampling.PerImage;
            Report(ProgressDisplay.Run("train flow", p => TextToImageTraining.TrainFlow(a.Read(r, p) with { EvalEvery = every, Sampling = sampling }, r.GetValue(vae)!, r.GetValue(tokenizer)!, arch, p.Log)));
            return 0;
        });
        return c;
    }

    private static Command Pairs()
    {
        var data = new Option<string>("--data") { Description = "Twemoji dataset folder (its training captions condition the pairs)", Required = true };
        var model = new Option<string>("--model") { Description = "the teacher's model folder (e.g. the 1-RF model/)", Required = true };
        var outDir = new Option<string>("--out") { Description = "folder for the pair shards", Required = true };
        var count = new Option<int>("--count") { DefaultValueFactory = _ => 4096, Description = "number of pairs" };
        var steps = new Option<int>("--steps") { DefaultValueFactory = _ => 25, Description = "Euler steps of the teacher's ODE" };
        var guidance = new Option<float>("--guidance") { DefaultValueFactory = _ => 2f, Description = "classifier-free guidance of the teacher" };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 64, Description = "ODE batch (pairs share a batch by index)" };
        var shard = new Option<int>("--shard") { DefaultValueFactory = _ => 512, Description = "pairs per shard file" };
        var seed = new Option<ulong>("--seed") { DefaultValueFactory = _ => 0UL };
        var threads = Threads();
        var balance = Balance("pair's caption", "caption");
        var c = new Command("pairs", "Reflow pairs (noise, latent, caption index) from a model's guided ODE") { data, model, outDir, count, steps, guidance, batch, shard, seed, threads, balance };
        c.SetAction(r =>
        {
            UseThreads(r, threads);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var gen = TextToImageTraining.PairGeneratorFor(r.GetValue(model)!, r.GetValue(data)!, r.GetValue(steps), r.GetValue(guidance), r.GetValue(seed), r.GetValue(batch),
                r.GetValue(balance) ? CaptionSampling.PerEmoji : CaptionSampling.PerImage);
            int total = r.GetValue(count);
            ProgressDisplay.Run("train pairs", p => PairShards.Write(gen, r.GetValue(outDir)!, total, r.GetValue(shard), done => p.Report(new JobProgress(done, total))));
            CliIO.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{total} pairs in {r.GetValue(outDir)}, {clock.Elapsed.TotalSeconds:F0} s"));
            return 0;
        });
        return c;
    }

    private static Option<bool> Balance(string what, string byDefault) => new("--balance")
    {
        Description = $"draw every emoji equally often (its skin-tone variations share its draws), then one of its images, for each {what}; " +
            $"default: every {byDefault} equally often (an emoji with 25 variations 25 times as often as one without)",
    };

    private static Command Reflow()
    {
        var a = new StageArgs(1000, 2e-4f);
        var model = new Option<string>("--model") { Description = "model folder to start from (the 1-RF model/)", Required = true };
        var pairs = new Option<string>("--pairs") { Description = "pair shards from train pairs", Required = true };
        var dropout = new Option<float>("--dropout") { DefaultValueFactory = _ => 0f, Description = "caption dropout (the pairs already carry the guidance)" };
        var c = a.Command("reflow", "2-RF: the rectified-flow loss on the 1-RF's pairs, initialized from 1-RF", model, pairs, dropout);
        c.SetAction(r =>
        {
            Report(ProgressDisplay.Run("train reflow", p => TextToImageTraining.TrainReflow(a.Read(r, p), r.GetValue(model)!, r.GetValue(pairs)!, r.GetValue(dropout), p.Log)));
            return 0;
        });
        return c;
    }

    private static Command Distill()
    {
        var a = new StageArgs(1000, 2e-4f);
        var model = new Option<string>("--model") { Description = "model folder to start from (the 2-RF model/)", Required = true };
        var pairs = new Option<string>("--pairs") { Description = "pair shards made by that model", Required = true };
        var lpips = new Option<string[]>("--lpips")
        {
            Description = "LPIPS weights (safetensors: torchvision VGG16 features + lpips lin layers, or one LPIPS state dict): " +
                "LPIPS on decoded images instead of L2 on latents (InstaFlow's second phase; start it from the L2-distilled model)",
            AllowMultipleArgumentsPerToken = true,
        };
        var c = a.Command("distill", "One-step distillation (k = 1; L2 on latents, or LPIPS on images) from pairs of the 2-RF", model, pairs, lpips);
        c.SetAction(r =>
        {
            // before the long data and model loading
            foreach (var f in r.GetValue(lpips) ?? [])
                if (!File.Exists(f)) throw new UserException($"{f}: LPIPS weights file not found (--lpips takes safetensors files)");
            Report(ProgressDisplay.Run("train distill", p => TextToImageTraining.TrainDistill(a.Read(r, p), r.GetValue(model)!, r.GetValue(pairs)!, p.Log, r.GetValue(lpips))));
            return 0;
        });
        return c;
    }

    public static int[] Ints(string list) =>
        list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v > 0 ? v : throw new UserException($"not a list of positive integers: {list}"))
            .ToArray();
}
