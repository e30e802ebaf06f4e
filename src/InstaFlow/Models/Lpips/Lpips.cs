// LPIPS (learned perceptual image patch similarity; lpips 0.1, net='vgg'): the ImageNet VGG16 trunk tapped after
// relu1_2 .. relu5_3, channels unit-normalized per pixel, squared differences weighted by the learned 1x1 "lin"
// layers, spatial means summed over the five taps. Widths come from the weight shapes, so reduced nets and the
// real one load with the same code.
using System.Globalization;
using InstaFlow.IO;
using InstaFlow.Nn;
using InstaFlow.Tensors;

namespace InstaFlow.Models.Lpips;

/// <summary>The distance per image pair [N, 1, 1, 1], each tap's share, and (on request) the intermediate tensors.</summary>
public sealed record LpipsResult(Tensor Value, Tensor[] PerLayer, IReadOnlyDictionary<string, Tensor> Debug);

public sealed class Lpips : Module
{
    /// <summary>torchvision vgg16.features indices of the 13 convs (3x3, padding 1), each followed by a ReLU.</summary>
    public static readonly int[] ConvIndices = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28];
    // 2x2 max pools (stride 2) sit at these indices; LPIPS taps the ReLUs at 3, 8, 15, 22, 29 and never uses pool 30
    private static readonly int[] PoolIndices = [4, 9, 16, 23];
    private static readonly int[] TapIndices = [3, 8, 15, 22, 29];
    /// <summary>The v0.1 ScalingLayer: x' = (x - shift) / scale per RGB channel, for inputs in [-1, 1].</summary>
    public static readonly float[] Shift = [-.030f, -.088f, -.188f], Scale = [.458f, .448f, .450f];

    private readonly Dictionary<int, Conv2d> _convs = new();
    private readonly Conv2d[] _lins;
    private readonly Tensor _shift, _scale;

    /// <summary>widths: the output channels of the 13 convs in order (the real VGG16: 64, 64, 128, ..., 512).</summary>
    public Lpips(int[] widths)
    {
        if (widths.Length != ConvIndices.Length) throw new ArgumentException($"VGG16 has {ConvIndices.Length} convs, got {widths.Length} widths");
        Widths = widths;
        var features = Child("features", new Named());
        int cin = 3;
        for (int j = 0; j < ConvIndices.Length; j++)
        {
            _convs[ConvIndices[j]] = features.Add(ConvIndices[j].ToString(CultureInfo.InvariantCulture), new Conv2d(cin, widths[j], 3, padding: 1));
            cin = widths[j];
        }
        _lins = TapIndices.Select((tap, k) =>
        {
            var lin = Child($"lin{k}", new Named());
            // index 1 because lpips keeps a Dropout (no weights) at model.0
            var model = lin.Add("model", new Named());
            return model.Add("1", new Conv2d(_convs[tap - 1].OutChannels, 1, 1, bias: false));
        }).ToArray();
        _shift = Constant(Shift);
        _scale = Constant(Scale);
    }

    public int[] Widths { get; }

    // outlives any scope the model is built in
    private static Tensor Constant(float[] rgb)
    {
        var t = Tensor.EmptyPersistent(1, 3, 1, 1);
        rgb.CopyTo(t.Span);
        return t;
    }

    /// <summary>The channel counts LPIPS compares: the widths at relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.</summary>
    public int[] TapChannels => TapIndices.Select(t => _convs[t - 1].OutChannels).ToArray();

    // in0, in1: [N, 3, H, W] in [-1, 1] -> Value [N, 1, 1, 1]
    public LpipsResult Forward(Tensor in0, Tensor in1, bool keepDebug = false)
    {
        if (in0.Rank != 4 || in0.Dim(1) != 3 || !ShapeUtil.SameShape(in0.Shape, in1.Shape))
            throw new ArgumentException($"LPIPS compares two [N, 3, H, W] batches of the same shape, got {in0.Describe()} and {in1.Describe()}");
        var debug = new Dictionary<string, Tensor>();
        int n = in0.Dim(0);

        // 1. ScalingLayer, both images as one batch through VGG
        var x = Ops.Div(Ops.Sub(Ops.Concat([in0, in1], 0), _shift), _scale);
        if (keepDebug) { debug["debug.scaled0"] = Ops.Narrow(x, 0, 0, n); debug["debug.scaled1"] = Ops.Narrow(x, 0, n, n); }

        // 2. VGG16 features up to relu5_3, keeping the five taps
        var taps = new List<Tensor>();
        for (int i = 0; i <= TapIndices[^1]; i++)
        {
            if (_convs.TryGetValue(i, out var conv)) x = conv.Forward(x);
            else if (PoolIndices.Contains(i)) x = Ops.MaxPool2d(x, 2, 2);
            else
            {
                x = Ops.Relu(x);
                if (TapIndices.Contains(i)) taps.Add(x);
            }
        }

        // 3. per tap: unit channel vectors, squared difference, lin weights, spatial mean
        var perLayer = new Tensor[taps.Count];
        Tensor? total = null;
        for (int k = 0; k < taps.Count; k++)
        {
            var f0 = Ops.Narrow(taps[k], 0, 0, n);
            var f1 = Ops.Narrow(taps[k], 0, n, n);
            var diff = Ops.Square(Ops.Sub(UnitNormalize(f0), UnitNormalize(f1)));
            var lin = _lins[k].Forward(diff);
            perLayer[k] = Ops.Mean(Ops.Mean(lin, 3, keepDim: true), 2, keepDim: true);
            // 4. sum over taps in order
            total = total == null ? perLayer[k] : Ops.Add(total, perLayer[k]);
            if (keepDebug)
            {
                debug[$"debug.feat0.{k}"] = f0; debug[$"debug.feat1.{k}"] = f1;
                debug[$"debug.diff.{k}"] = diff; debug[$"debug.lin_out.{k}"] = lin;
            }
        }
        return new LpipsResult(total!, perLayer, debug);
    }

    /// <summary>
    /// f / (|f| + 1e-10) over channels, per pixel. The 1e-20 inside the root changes no value of |f| above ~1e-13 in
    /// float32 but keeps the gradient finite at all-zero pixels (common after ReLU), where d sqrt would be infinite.
    /// </summary>
    private static Tensor UnitNormalize(Tensor f) =>
        Ops.Div(f, Ops.AddScalar(Ops.Sqrt(Ops.AddScalar(Ops.Sum(Ops.Square(f), 1, keepDim: true), 1e-20f)), 1e-10f));

    /// <summary>
    /// Loads LPIPS from safetensors files that together hold the VGG16 features and the five lin layers, in either
    /// naming: torchvision's `features.{i}.*` plus the lpips release's `lin{k}.model.1.weight`, or a whole LPIPS
    /// state dict (`net.slice{s}.{i}.*`, `lin{k}.*`, its duplicate `lins.{k}.*`, `scaling_layer.*`). VGG16's
    /// `classifier.*` head is ignored. Widths are read from the weight shapes.
    /// </summary>
    public static (Lpips Model, LoadReport Report) Load(params string[] files)
    {
        if (files.Length == 0) throw new ArgumentException("LPIPS needs at least one weights file");
        var opened = files.Select(f => File.Exists(f) ? SafeTensors.Open(f) : throw new FileNotFoundException($"{f}: LPIPS weights file not found", f)).ToList();
        try
        {
            var keyed = new Dictionary<string, (SafeTensorsFile File, string Name)>();
            foreach (var file in opened)
                foreach (var name in file.Names)
                {
                    if (CanonicalKey(name) is not string key) continue;
                    if (keyed.TryGetValue(key, out var first) && !(first.File == file && first.Name == name))
                    {
                        // the same tensor under two names in one state dict (or in two files) is fine when identical
                        if (!first.File.RawBytes(first.Name).SequenceEqual(file.RawBytes(name)))
                            throw new InvalidInputException($"{file.Path}: '{name}' and {first.File.Path}: '{first.Name}' both give '{key}' but differ");
                        continue;
                    }
                    keyed[key] = (file, name);
                }
            var widths = ConvIndices.Select(i =>
            {
                if (!keyed.TryGetValue($"features.{i}.weight", out var w))
                    throw new InvalidInputException($"{string.Join(", ", files)}: no VGG16 weight 'features.{i}.weight' (or 'net.slice*.{i}.weight'); pass torchvision's VGG16 features and the lpips lin weights");
                return w.File.Info(w.Name).Shape[0];
            }).ToArray();
            var model = new Lpips(widths);
            var state = keyed.ToDictionary(kv => kv.Key, kv => kv.Value.File.ReadF32(kv.Value.Name));
            var report = model.LoadStateDict(state, strict: true, string.Join(", ", files));
            model.SetRequiresGrad(false);
            return (model, report);
        }
        finally { foreach (var f in opened) f.Dispose(); }
    }

    /// <summary>The module key a file key loads into, or null for keys LPIPS does not use.</summary>
    public static string? CanonicalKey(string name)
    {
        if (name.StartsWith("classifier.", StringComparison.Ordinal) || name.StartsWith("scaling_layer.", StringComparison.Ordinal)) return null;
        if (name.StartsWith("lins.", StringComparison.Ordinal)) return "lin" + name["lins.".Length..];
        if (name.StartsWith("net.slice", StringComparison.Ordinal))
        {
            int dot = name.IndexOf('.', "net.slice".Length);
            return dot < 0 ? name : "features" + name[dot..];
        }
        return name;
    }

    /// <summary>A container whose children carry the names they are given (torchvision indices, lpips `model.1`).</summary>
    private sealed class Named : Module
    {
        public T Add<T>(string name, T module) where T : Module => Child(name, module);
    }
}
