// `instaflow reflow`: InstaFlow stage 2, text-conditioned reflow of an SD UNet on teacher triplets into a
// 2-Rectified-Flow diffusers folder (resumable from its checkpoints).
using System.CommandLine;
using InstaFlow.Training.Reflow;

namespace InstaFlow.Cli;

public static class ReflowCommand
{
    public static Command Create()
    {
        var teacher = new ModelOptions("--teacher", required: true, what: "the SD-1.5-family teacher (text encoder, tokenizer, VAE and the initial UNet)", ema: false);
        var triplets = new Option<string>("--triplets") { Description = "folder made by `instaflow triplets` (all shards present and verified)", Required = true };
        var prompts = new Option<string>("--prompts") { Description = "the prompts file the triplets were made from (checked by sha256)", Required = true };
        var outDir = new Option<string>("--out") { Description = "output diffusers folder; checkpoints/ and train_log.jsonl go inside", Required = true };
        var d = new TextReflowOptions();
        var steps = new Option<int>("--steps") { Description = "total optimizer steps", DefaultValueFactory = _ => d.Steps };
        var batch = new Option<int>("--batch") { Description = "triplets per step", DefaultValueFactory = _ => d.BatchSize };
        var lr = new Option<float>("--lr") { Description = "AdamW learning rate", DefaultValueFactory = _ => d.LearningRate };
        var warmup = new Option<int>("--warmup") { Description = "linear learning-rate warmup steps", DefaultValueFactory = _ => d.WarmupSteps };
        var ema = new Option<float?>("--ema") { Description = "EMA decay of the weights (e.g. 0.999); the EMA weights are saved" };
        var dropout = new Option<float>("--cond-dropout") { Description = "probability of training on the empty prompt (for classifier-free guidance)", DefaultValueFactory = _ => d.CondDropout };
        var seed = new Option<ulong>("--seed") { Description = "seed of the training random stream", DefaultValueFactory = _ => 0UL };
        var every = new Option<int>("--checkpoint-every") { Description = "steps between checkpoints", DefaultValueFactory = _ => d.CheckpointEvery };
        var scratch = new Option<bool>("--from-scratch") { Description = "start from random UNet weights instead of the teacher's" };
        var accum = TrainCommand.GradAccum();
        var threads = TrainCommand.Threads();
        var cmd = new Command("reflow", "Train a text-conditioned 2-rectified flow (InstaFlow stage 2) on teacher triplets");
        teacher.AddTo(cmd);
        foreach (var o in new Option[] { triplets, prompts, outDir, steps, batch, lr, warmup, ema, dropout, seed, every, scratch, accum, threads }) cmd.Options.Add(o);
        cmd.SetAction(r =>
        {
            TrainCommand.UseThreads(r, threads);
            var world = CliWorld.Get();
            ProgressDisplay.Run("reflow", p =>
            {
                var opts = new TextReflowOptions
                {
                    Steps = r.GetValue(steps), BatchSize = r.GetValue(batch), LearningRate = r.GetValue(lr), WarmupSteps = r.GetValue(warmup),
                    EmaDecay = r.GetValue(ema), CondDropout = r.GetValue(dropout), Seed = r.GetValue(seed), CheckpointEvery = r.GetValue(every),
                    FromScratch = r.GetValue(scratch), Progress = CliWorld.Speaks ? p.Training : null,
                    World = world, GradAccum = r.GetValue(accum),
                };
                TextReflow.Run(teacher.Source(r), r.GetValue(triplets)!, r.GetValue(prompts)!, r.GetValue(outDir)!, opts, CliWorld.Speaks ? p.Log : null);
            });
            return 0;
        });
        return cmd;
    }
}
