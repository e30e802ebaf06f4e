// The FID feature extractor of pytorch-fid 0.3.0: the TensorFlow-ported Inception-v3 (torchvision Inception3 with the
// FID A/C/E blocks) from image to the 2048-d pool3 features. Inference only. Widths come from the weight shapes, so
// the real `pt_inception-2015-12-05` weights and reduced test nets load with the same code.
using InstaFlow.IO;
using InstaFlow.Nn;
using InstaFlow.Tensors;

namespace InstaFlow.Models.Inception;

/// <summary>pool3 features [N, C] and (on request) the intermediates under pytorch-fid's golden names.</summary>
public sealed record FidInceptionResult(Tensor Pool3, IReadOnlyDictionary<string, Tensor> Debug);

public sealed class FidInceptionV3 : Module
{
    /// <summary>pytorch-fid resizes every image to this square before the network.</summary>
    public const int InputSize = 299;

    private readonly BasicConv2d _c1a, _c2a, _c2b, _c3b, _c4a;
    private readonly InceptionBlock[] _mixed;

    /// <summary>The mixed blocks in order; block 2 of pytorch-fid ends after Mixed_6e, block 3 after Mixed_7c.</summary>
    public static readonly string[] MixedNames = ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"];

    public FidInceptionV3(ConvWidths widths)
    {
        BasicConv2d Stem(string name, int cin, int k, int stride = 1, int pad = 0) =>
            Child(name, new BasicConv2d(cin, widths(name), k, k, stride, pad, pad));
        _c1a = Stem("Conv2d_1a_3x3", 3, 3, stride: 2);
        _c2a = Stem("Conv2d_2a_3x3", _c1a.OutChannels, 3);
        _c2b = Stem("Conv2d_2b_3x3", _c2a.OutChannels, 3, pad: 1);
        _c3b = Stem("Conv2d_3b_1x1", _c2b.OutChannels, 1);
        _c4a = Stem("Conv2d_4a_3x3", _c3b.OutChannels, 3);
        int c = _c4a.OutChannels;
        _mixed = new InceptionBlock[MixedNames.Length];
        for (int i = 0; i < MixedNames.Length; i++)
        {
            string n = MixedNames[i];
            _mixed[i] = Child(n, n switch
            {
                "Mixed_5b" or "Mixed_5c" or "Mixed_5d" => (InceptionBlock)new FidInceptionA(n, c, widths),
                "Mixed_6a" => new InceptionB(n, c, widths),
                "Mixed_7a" => new InceptionD(n, c, widths),
                "Mixed_7b" or "Mixed_7c" => new FidInceptionE(n, c, widths, maxPool: n == "Mixed_7c"),
                _ => new FidInceptionC(n, c, widths),
            });
            c = _mixed[i].OutChannels;
        }
    }

    /// <summary>Width of the pool3 features (2048 for the real network).</summary>
    public int FeatureSize => _mixed[^1].OutChannels;

    /// <summary>images: [N, 3, H, W] in [0, 1] -> [N, 3, 299, 299] in [-1, 1]: bilinear resize, then 2x - 1.</summary>
    public static Tensor Preprocess(Tensor images)
    {
        if (images.Rank != 4 || images.Dim(1) != 3) throw new ArgumentException($"FID Inception takes RGB images [N, 3, H, W], got {images.Describe()}");
        // at 299x299 the resize is the identity (every source coordinate is exact), so it is skipped
        var x = images.Dim(2) == InputSize && images.Dim(3) == InputSize ? images : Ops.ResizeBilinear(images, InputSize, InputSize);
        return Ops.AddScalar(Ops.MulScalar(x, 2f), -1f);
    }

    // images: [N, 3, H, W] in [0, 1] -> Pool3 [N, C]
    public FidInceptionResult Forward(Tensor images, bool keepDebug = false) => ForwardPreprocessed(Preprocess(images), keepDebug);

    // x: [N, 3, 299, 299] in [-1, 1] (from Preprocess) -> Pool3 [N, C]
    public FidInceptionResult ForwardPreprocessed(Tensor x, bool keepDebug = false)
    {
        if (x.Rank != 4 || x.Dim(1) != 3) throw new ArgumentException($"FID Inception takes RGB images [N, 3, H, W], got {x.Describe()}");
        var debug = new Dictionary<string, Tensor>();
        if (keepDebug) debug["debug.block0_input"] = x;
        x = Block(() => Ops.MaxPool2d(_c2b.Forward(_c2a.Forward(_c1a.Forward(x))), 3, 2));
        if (keepDebug) debug["debug.block0"] = x;
        x = Block(() => Ops.MaxPool2d(_c4a.Forward(_c3b.Forward(x)), 3, 2));
        if (keepDebug) debug["debug.block1"] = x;
        for (int i = 0; i < _mixed.Length; i++)
        {
            var input = x;
            x = Block(() => _mixed[i].Forward(input));
            if (keepDebug) debug[$"debug.{MixedNames[i]}"] = x;
            if (keepDebug && MixedNames[i] == "Mixed_6e") debug["debug.block2"] = x;
        }
        int n = x.Dim(0), c = x.Dim(1);
        // AdaptiveAvgPool2d(1) then squeeze
        var pool3 = Ops.Mean(Ops.Reshape(x, n, c, -1), 2);
        return new FidInceptionResult(pool3, debug);
    }

    // Runs one block in its own scope at inference, so only the block's output outlives it.
    private static Tensor Block(Func<Tensor> body)
    {
        using var scope = TensorScope.ForInference();
        return scope.KeepOrSelf(body());
    }

    /// <summary>
    /// Loads the network from a safetensors file with torchvision Inception3 names (`Conv2d_1a_3x3.conv.weight`,
    /// `Mixed_5b.branch1x1.bn.running_mean`, ...), as `pt_inception-2015-12-05` converted to safetensors. The
    /// classifier `fc.*` and `*.num_batches_tracked` are ignored; any other missing or unexpected key is an error.
    /// </summary>
    public static (FidInceptionV3 Model, LoadReport Report) Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: FID Inception weights file not found", path);
        using var file = SafeTensors.Open(path);
        var model = new FidInceptionV3(name =>
        {
            string key = name + ".conv.weight";
            if (!file.Contains(key))
                throw new InvalidInputException($"{path}: no tensor '{key}'; expected the pytorch-fid Inception weights (pt_inception-2015-12-05) with torchvision Inception3 names");
            var shape = file.Info(key).Shape;
            if (shape.Length != 4) throw new InvalidInputException($"{path}: '{key}' has shape {ShapeUtil.Format(shape)}; a conv weight is [Cout, Cin, kh, kw]");
            return shape[0];
        });
        var ignored = file.Names.Where(IsIgnored).ToList();
        var state = file.Names.Where(k => !IsIgnored(k)).ToDictionary(k => k, file.ReadF32);
        var report = model.LoadStateDict(state, strict: true, path, ignored);
        model.SetRequiresGrad(false);
        return (model, report);
    }

    /// <summary>Keys of the checkpoint that pool3 does not use: the 1008-way classifier and BatchNorm's step counters.</summary>
    public static bool IsIgnored(string key) =>
        key.StartsWith("fc.", StringComparison.Ordinal) || key.EndsWith(".num_batches_tracked", StringComparison.Ordinal);
}
