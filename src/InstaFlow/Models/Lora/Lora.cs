// LoRA files for SD-1.5-family pipelines, in the kohya-ss/A1111 format (`lora_unet_*`, `lora_te_*`, with alpha) and
// the diffusers formats (attention processors, `lora_linear_layer`, PEFT `lora_A`/`lora_B`), merged into the weights
// as diffusers' fuse_lora does: W += scale * (alpha / rank) * up @ down.
using InstaFlow.IO;
using InstaFlow.Nn;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;
using Blas = InstaFlow.Tensors.Kernels.Blas;

namespace InstaFlow.Models.Lora;

/// <summary>One low-rank update: down [rank, in], up [out, rank]; Alpha defaults to the rank (a factor of 1).</summary>
public sealed record LoraUpdate(string Component, string ModulePath, Tensor Down, Tensor Up, float Alpha)
{
    public int Rank => Down.Dim(0);
    public float Factor => Alpha / Rank;
}

public static class Lora
{
    public const string Unet = "unet", TextEncoder = "text_encoder";

    /// <summary>
    /// Reads every update in the file and resolves it to a module of the given text encoder and UNet (kohya names are
    /// matched against the models' own module paths in underscore form, since the names themselves contain '_').
    /// </summary>
    public static IReadOnlyList<LoraUpdate> Read(string path, Module textEncoder, Module unet)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: LoRA file not found", path);
        using var file = SafeTensors.Open(path);
        var kohya = new Dictionary<string, (string Component, string Path)>();
        foreach (var (component, prefix, model) in new[] { (Unet, "lora_unet_", unet), (TextEncoder, "lora_te_", textEncoder) })
            foreach (var (p, m) in model.NamedModules())
                if (m is Linear or Conv2d) kohya[prefix + p.Replace('.', '_')] = (component, p);

        var parts = new Dictionary<(string Component, string Path), (Tensor? Down, Tensor? Up, float? Alpha)>();
        var keys = new Dictionary<(string, string, bool IsDown), string>();
        string? current = null;
        void Set((string, string) key, Tensor? down = null, Tensor? up = null, float? alpha = null)
        {
            if (down != null) keys[(key.Item1, key.Item2, true)] = current!;
            if (up != null) keys[(key.Item1, key.Item2, false)] = current!;
            var cur = parts.GetValueOrDefault(key);
            parts[key] = (down ?? cur.Down, up ?? cur.Up, alpha ?? cur.Alpha);
        }
        foreach (var name in file.Names)
        {
            current = name;
            if (name.StartsWith("lora_unet_", StringComparison.Ordinal) || name.StartsWith("lora_te_", StringComparison.Ordinal))
            {
                int dot = name.IndexOf('.');
                string module = dot < 0 ? name : name[..dot], rest = dot < 0 ? "" : name[(dot + 1)..];
                if (!kohya.TryGetValue(module, out var key))
                    throw new InvalidInputException($"{path}: LoRA module '{module}' matches no linear or conv layer of this model's {(module.StartsWith("lora_te_", StringComparison.Ordinal) ? "text encoder" : "UNet")}");
                switch (rest)
                {
                    case "lora_down.weight": Set(key, down: file.ReadF32(name)); break;
                    case "lora_up.weight": Set(key, up: file.ReadF32(name)); break;
                    case "alpha": Set(key, alpha: file.ReadF32(name).ToArray()[0]); break;
                    default: throw new InvalidInputException($"{path}: unsupported LoRA tensor '{name}' (only lora_down, lora_up and alpha are known)");
                }
            }
            else if (DiffusersKey(name) is var (component, module, isDown))
            {
                var key = (component, module);
                if (isDown) Set(key, down: file.ReadF32(name)); else Set(key, up: file.ReadF32(name));
            }
            else throw new InvalidInputException($"{path}: '{name}' is neither a kohya (lora_unet_*, lora_te_*) nor a diffusers (unet.*, text_encoder.*) LoRA key");
        }

        var targets = new Dictionary<(string, string), Module>();
        foreach (var (component, model) in new[] { (Unet, unet), (TextEncoder, textEncoder) })
            foreach (var (p, m) in model.NamedModules()) targets[(component, p)] = m;
        var updates = new List<LoraUpdate>();
        foreach (var ((component, module), (down, up, alpha)) in parts)
        {
            if (down == null || up == null) throw new InvalidInputException($"{path}: LoRA for {component} '{module}' lacks its {(down == null ? "down" : "up")} matrix");
            var weight = targets.GetValueOrDefault((component, module)) switch { Linear l => l.Weight.Value, Conv2d { Kernel: 1 } c => c.Weight.Value, _ => null };
            if (weight != null) CheckShapes(path, keys[(component, module, true)], keys[(component, module, false)], down, up, weight);
            updates.Add(new LoraUpdate(component, module, down, up, alpha ?? down.Dim(0)));
        }
        return updates;
    }

    /// <summary>
    /// Refuses down/up matrices whose shapes are not [rank, in] and [out, rank] (with trailing 1x1 for a 1x1 conv): a
    /// transposed pair has the right element count, and merging it would scramble the weight.
    /// </summary>
    private static void CheckShapes(string path, string downKey, string upKey, Tensor down, Tensor up, Tensor weight)
    {
        int outF = weight.Dim(0), inF = (int)(weight.Numel / outF), rank = down.Dim(0);
        static bool Is(Tensor t, int rows, int cols) =>
            (t.Rank == 2 && t.Dim(0) == rows && t.Dim(1) == cols) || (t.Rank == 4 && t.Dim(0) == rows && t.Dim(1) == cols && t.Dim(2) == 1 && t.Dim(3) == 1);
        if (!Is(down, rank, inF))
            throw new InvalidInputException($"{path}: LoRA tensor '{downKey}' has shape {down.Describe()}, expected [rank, {inF}] for its weight {weight.Describe()} (transposed?)");
        if (!Is(up, outF, rank))
            throw new InvalidInputException($"{path}: LoRA tensor '{upKey}' has shape {up.Describe()}, expected [{outF}, {rank}] for its weight {weight.Describe()} (transposed?)");
    }

    /// <summary>(component, module path, is-down) for the diffusers formats, or null.</summary>
    private static (string, string, bool)? DiffusersKey(string name)
    {
        string? component = name.StartsWith("unet.", StringComparison.Ordinal) ? Unet : name.StartsWith("text_encoder.", StringComparison.Ordinal) ? TextEncoder : null;
        if (component == null) return null;
        string rest = name[(component.Length + 1)..];
        foreach (var (suffix, down) in new[] { (".down.weight", true), (".up.weight", false), (".lora_A.weight", true), (".lora_B.weight", false) })
        {
            if (!rest.EndsWith(suffix, StringComparison.Ordinal)) continue;
            var path = rest[..^suffix.Length];
            // attention processors: <attn>.processor.to_q_lora -> <attn>.to_q (to_out_lora -> to_out.0)
            int proc = path.IndexOf(".processor.", StringComparison.Ordinal);
            if (proc >= 0)
            {
                var target = path[(proc + ".processor.".Length)..];
                if (!target.EndsWith("_lora", StringComparison.Ordinal)) return null;
                target = target[..^"_lora".Length];
                path = path[..proc] + "." + (target == "to_out" ? "to_out.0" : target);
            }
            if (path.EndsWith(".lora_linear_layer", StringComparison.Ordinal)) path = path[..^".lora_linear_layer".Length];
            return (component, path, down);
        }
        return null;
    }

    /// <summary>
    /// Adds scale * (alpha / rank) * up @ down to each target's weight (the bias is untouched). Linear layers and 1x1
    /// convs take updates; other convs (LoCon) are refused. Returns the number of layers changed.
    /// </summary>
    public static unsafe int Merge(IReadOnlyList<LoraUpdate> updates, Module textEncoder, Module unet, float unetScale, float textScale)
    {
        var modules = new Dictionary<(string, string), Module>();
        foreach (var (component, model) in new[] { (Unet, unet), (TextEncoder, textEncoder) })
            foreach (var (p, m) in model.NamedModules()) modules[(component, p)] = m;
        using var noGrad = GradMode.NoGrad();
        foreach (var u in updates)
        {
            if (!modules.TryGetValue((u.Component, u.ModulePath), out var m))
                throw new InvalidInputException($"LoRA target {u.Component} '{u.ModulePath}' is not a module of this model");
            var param = m switch
            {
                Linear l => l.Weight,
                Conv2d c when c.Kernel == 1 => c.Weight,
                Conv2d c => throw new NotSupportedException($"LoRA on the {c.Kernel}x{c.Kernel} conv {u.Component} '{u.ModulePath}' (LoCon) is not supported"),
                _ => throw new InvalidInputException($"LoRA target {u.Component} '{u.ModulePath}' is a {m.GetType().Name}, not a linear layer"),
            };
            // The merged weight is float32 (as diffusers merges in the pipeline's dtype, float32 here): a weight
            // kept in F16/BF16 is widened first.
            if (param.Value.DType != TensorDType.F32) param.Replace(param.Value.ToFloat32());
            var weight = param.Value;
            int outF = weight.Dim(0), inF = (int)(weight.Numel / outF);
            if (u.Down.Numel != (long)u.Rank * inF || u.Up.Numel != (long)outF * u.Rank)
                throw new InvalidInputException($"LoRA for {u.Component} '{u.ModulePath}': down {u.Down.Describe()} and up {u.Up.Describe()} do not fit its weight {weight.Describe()}");
            using var scope = TensorScope.Begin();
            var delta = Ops.MatMul(u.Up.Reshape(outF, u.Rank), u.Down.Reshape(u.Rank, inF));
            Blas.Axpy((u.Component == Unet ? unetScale : textScale) * u.Factor, delta.Data, weight.Data, weight.Numel);
        }
        return updates.Count;
    }
}
