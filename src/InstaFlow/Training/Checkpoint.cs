// Training checkpoints: parameters, EMA shadow and optimizer moments in one safetensors file, plus a JSON state file
// (step, generator state, weights file name). Both are written to a temp file and renamed, the JSON last, so the
// JSON always names a complete weights file and a crash leaves the previous checkpoint intact.
using System.Text.Json;
using System.Text.Json.Serialization;
using InstaFlow.IO;
using InstaFlow.Nn;
using InstaFlow.Tensors;

namespace InstaFlow.Training;

public sealed record CheckpointState(
    [property: JsonPropertyName("step")] long Step,
    [property: JsonPropertyName("weights")] string Weights,
    [property: JsonPropertyName("rng_state")] string RngState,
    [property: JsonPropertyName("has_ema")] bool HasEma);

public static class Checkpoint
{
    public const string StateFile = "state.json";

    public static bool Exists(string dir) => File.Exists(Path.Combine(dir, StateFile));

    public static void Save(string dir, long step, Module module, Optimizer optimizer, Ema? ema, byte[] rngState)
    {
        Directory.CreateDirectory(dir);
        var previous = Exists(dir) ? ReadState(dir).Weights : null;
        string weights = $"checkpoint-{step:D9}.safetensors";
        var tensors = module.NamedParameters().Select(p => ("model." + p.Name, p.Param.Value))
            .Concat(optimizer.State().Select(s => ("optimizer." + s.Name, s.Value)));
        if (ema != null) tensors = tensors.Concat(ema.Shadow.Select((t, i) => ($"ema.{i}", t)));
        SafeTensors.Save(Path.Combine(dir, weights), tensors);
        var json = JsonSerializer.Serialize(new CheckpointState(step, weights, Convert.ToBase64String(rngState), ema != null));
        string statePath = Path.Combine(dir, StateFile);
        SafeFile.WriteAllText(statePath, json);
        if (previous != null && previous != weights) File.Delete(Path.Combine(dir, previous));
    }

    public static CheckpointState ReadState(string dir)
    {
        string path = Path.Combine(dir, StateFile);
        try
        {
            return JsonSerializer.Deserialize<CheckpointState>(File.ReadAllText(path)) ?? throw new InvalidInputException($"{path}: empty checkpoint state");
        }
        catch (JsonException e)
        {
            throw new InvalidInputException($"{path}: not a checkpoint state file ({e.Message})");
        }
    }

    /// <summary>
    /// Restores parameters, optimizer moments and EMA in place; returns the state (step, generator state). With
    /// emaMayStart, a checkpoint without EMA loaded into a trainer with EMA starts the average at the loaded weights.
    /// </summary>
    public static CheckpointState Load(string dir, Module module, Optimizer optimizer, Ema? ema, bool emaMayStart = false)
    {
        var state = ReadState(dir);
        bool startEma = !state.HasEma && ema != null && emaMayStart;
        if (state.HasEma != (ema != null) && !startEma)
            throw new InvalidInputException($"{dir}: checkpoint was saved {(state.HasEma ? "with" : "without")} EMA but the trainer is configured {(ema != null ? "with" : "without")} it; resume with the EMA setting (--ema) of the run that wrote it");
        using var scope = TensorScope.Begin();
        using var file = SafeTensors.Open(Path.Combine(dir, state.Weights));
        var all = file.Names.ToDictionary(n => n, n => file.ReadF32(n));
        try
        {
            var model = new Dictionary<string, Tensor>();
            var opt = new Dictionary<string, Tensor>();
            foreach (var (name, t) in all)
            {
                if (name.StartsWith("model.", StringComparison.Ordinal)) model[name["model.".Length..]] = t;
                else if (name.StartsWith("optimizer.", StringComparison.Ordinal)) opt[name["optimizer.".Length..]] = t;
            }
            // Copy rather than adopt the file's memory (LoadStateDict would): the file is deleted by a later save.
            var own = module.NamedParameters().ToList();
            if (own.Count != model.Count) throw new InvalidInputException($"{state.Weights}: holds {model.Count} model tensors, the model has {own.Count}");
            foreach (var (name, p) in own)
            {
                if (!model.TryGetValue(name, out var t)) throw new InvalidInputException($"{state.Weights}: missing model tensor '{name}'");
                if (!ShapeUtil.SameShape(t.Shape, p.Shape)) throw new InvalidInputException($"{state.Weights}: '{name}' has shape {t.Describe()}, the model expects {ShapeUtil.Format(p.Shape)}");
                p.Value.CopyFrom(t);
            }
            optimizer.LoadState(opt, state.Step);
            if (startEma)
                for (int i = 0; i < ema!.Shadow.Length; i++) ema.Shadow[i].CopyFrom(own[i].Param.Value);
            else if (ema != null)
                for (int i = 0; i < ema.Shadow.Length; i++)
                    ema.Shadow[i].CopyFrom(all.TryGetValue($"ema.{i}", out var e) ? e : throw new InvalidInputException($"{state.Weights}: missing 'ema.{i}'"));
            return state;
        }
        finally
        {
            foreach (var t in all.Values) t.Dispose();
        }
    }
}
