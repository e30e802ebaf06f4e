// The mixed blocks of the FID Inception (pytorch-fid's FIDInceptionA/C/E_1/E_2 and torchvision's InceptionB/D):
// parallel BasicConv2d branches concatenated over channels in the reference's branch order. Output widths of the
// convs come from a lookup (the weight file's shapes); input widths follow from the wiring.
using InstaFlow.Tensors;

namespace InstaFlow.Models.Inception;

/// <summary>Output channels of the BasicConv2d with this state-dict prefix (e.g. "Mixed_5b.branch1x1").</summary>
public delegate int ConvWidths(string name);

public abstract class InceptionBlock : Nn.Module
{
    private readonly string _name;
    private readonly ConvWidths _widths;

    protected InceptionBlock(string name, ConvWidths widths) { _name = name; _widths = widths; }

    public abstract int OutChannels { get; }

    // x: [B, Cin, H, W] -> [B, OutChannels, H', W']
    public abstract Tensor Forward(Tensor x);

    protected BasicConv2d Conv(string branch, int cin, int kh, int kw, int stride = 1, int padH = 0, int padW = 0) =>
        Child(branch, new BasicConv2d(cin, _widths($"{_name}.{branch}"), kh, kw, stride, padH, padW));

    protected static Tensor Chain(Tensor x, params BasicConv2d[] convs)
    {
        foreach (var c in convs) x = c.Forward(x);
        return x;
    }

    protected static Tensor AvgPool3(Tensor x) => Ops.AvgPool2d(x, 3, 1, 1, countIncludePad: false);
}

/// <summary>FIDInceptionA (Mixed_5b/5c/5d): 1x1 | 1x1, 5x5 | 1x1, 3x3, 3x3 | avg pool (padding not counted), 1x1.</summary>
public sealed class FidInceptionA : InceptionBlock
{
    private readonly BasicConv2d _b1, _b5a, _b5b, _d1, _d2, _d3, _pool;

    public FidInceptionA(string name, int cin, ConvWidths widths) : base(name, widths)
    {
        _b1 = Conv("branch1x1", cin, 1, 1);
        _b5a = Conv("branch5x5_1", cin, 1, 1);
        _b5b = Conv("branch5x5_2", _b5a.OutChannels, 5, 5, padH: 2, padW: 2);
        _d1 = Conv("branch3x3dbl_1", cin, 1, 1);
        _d2 = Conv("branch3x3dbl_2", _d1.OutChannels, 3, 3, padH: 1, padW: 1);
        _d3 = Conv("branch3x3dbl_3", _d2.OutChannels, 3, 3, padH: 1, padW: 1);
        _pool = Conv("branch_pool", cin, 1, 1);
    }

    public override int OutChannels => _b1.OutChannels + _b5b.OutChannels + _d3.OutChannels + _pool.OutChannels;

    public override Tensor Forward(Tensor x) =>
        Ops.Concat([_b1.Forward(x), Chain(x, _b5a, _b5b), Chain(x, _d1, _d2, _d3), _pool.Forward(AvgPool3(x))], 1);
}

/// <summary>torchvision InceptionB (Mixed_6a), halves the size: 3x3 s2 | 1x1, 3x3, 3x3 s2 | max pool 3x3 s2.</summary>
public sealed class InceptionB : InceptionBlock
{
    private readonly BasicConv2d _b3, _d1, _d2, _d3;
    private readonly int _cin;

    public InceptionB(string name, int cin, ConvWidths widths) : base(name, widths)
    {
        _cin = cin;
        _b3 = Conv("branch3x3", cin, 3, 3, stride: 2);
        _d1 = Conv("branch3x3dbl_1", cin, 1, 1);
        _d2 = Conv("branch3x3dbl_2", _d1.OutChannels, 3, 3, padH: 1, padW: 1);
        _d3 = Conv("branch3x3dbl_3", _d2.OutChannels, 3, 3, stride: 2);
    }

    public override int OutChannels => _b3.OutChannels + _d3.OutChannels + _cin;

    public override Tensor Forward(Tensor x) =>
        Ops.Concat([_b3.Forward(x), Chain(x, _d1, _d2, _d3), Ops.MaxPool2d(x, 3, 2)], 1);
}

/// <summary>
/// FIDInceptionC (Mixed_6b..6e): 1x1 | 1x1, 1x7, 7x1 | 1x1, 7x1, 1x7, 7x1, 1x7 | avg pool (padding not counted), 1x1.
/// </summary>
public sealed class FidInceptionC : InceptionBlock
{
    private readonly BasicConv2d _b1, _pool;
    private readonly BasicConv2d[] _b7, _d7;

    public FidInceptionC(string name, int cin, ConvWidths widths) : base(name, widths)
    {
        _b1 = Conv("branch1x1", cin, 1, 1);
        var a = Conv("branch7x7_1", cin, 1, 1);
        var b = Conv("branch7x7_2", a.OutChannels, 1, 7, padW: 3);
        _b7 = [a, b, Conv("branch7x7_3", b.OutChannels, 7, 1, padH: 3)];
        var d = new List<BasicConv2d> { Conv("branch7x7dbl_1", cin, 1, 1) };
        for (int i = 2; i <= 5; i++)
        {
            bool tall = i % 2 == 0; // _2 and _4 are 7x1, _3 and _5 are 1x7
            d.Add(Conv($"branch7x7dbl_{i}", d[^1].OutChannels, tall ? 7 : 1, tall ? 1 : 7, padH: tall ? 3 : 0, padW: tall ? 0 : 3));
        }
        _d7 = d.ToArray();
        _pool = Conv("branch_pool", cin, 1, 1);
    }

    public override int OutChannels => _b1.OutChannels + _b7[^1].OutChannels + _d7[^1].OutChannels + _pool.OutChannels;

    public override Tensor Forward(Tensor x) =>
        Ops.Concat([_b1.Forward(x), Chain(x, _b7), Chain(x, _d7), _pool.Forward(AvgPool3(x))], 1);
}

/// <summary>torchvision InceptionD (Mixed_7a), halves the size: 1x1, 3x3 s2 | 1x1, 1x7, 7x1, 3x3 s2 | max pool 3x3 s2.</summary>
public sealed class InceptionD : InceptionBlock
{
    private readonly BasicConv2d[] _b3, _b7;
    private readonly int _cin;

    public InceptionD(string name, int cin, ConvWidths widths) : base(name, widths)
    {
        _cin = cin;
        var a = Conv("branch3x3_1", cin, 1, 1);
        _b3 = [a, Conv("branch3x3_2", a.OutChannels, 3, 3, stride: 2)];
        var b1 = Conv("branch7x7x3_1", cin, 1, 1);
        var b2 = Conv("branch7x7x3_2", b1.OutChannels, 1, 7, padW: 3);
        var b3 = Conv("branch7x7x3_3", b2.OutChannels, 7, 1, padH: 3);
        _b7 = [b1, b2, b3, Conv("branch7x7x3_4", b3.OutChannels, 3, 3, stride: 2)];
    }

    public override int OutChannels => _b3[^1].OutChannels + _b7[^1].OutChannels + _cin;

    public override Tensor Forward(Tensor x) =>
        Ops.Concat([Chain(x, _b3), Chain(x, _b7), Ops.MaxPool2d(x, 3, 2)], 1);
}

/// <summary>
/// FIDInceptionE_1 (Mixed_7b, average pool without the padding) and FIDInceptionE_2 (Mixed_7c, max pool): 1x1 |
/// 1x1 then [1x3, 3x1] | 1x1, 3x3 then [1x3, 3x1] | pool 3x3 s1 p1, 1x1.
/// </summary>
public sealed class FidInceptionE : InceptionBlock
{
    private readonly BasicConv2d _b1, _b3, _b3a, _b3b, _d1, _d2, _d3a, _d3b, _pool;
    private readonly bool _maxPool;

    public FidInceptionE(string name, int cin, ConvWidths widths, bool maxPool) : base(name, widths)
    {
        _maxPool = maxPool;
        _b1 = Conv("branch1x1", cin, 1, 1);
        _b3 = Conv("branch3x3_1", cin, 1, 1);
        _b3a = Conv("branch3x3_2a", _b3.OutChannels, 1, 3, padW: 1);
        _b3b = Conv("branch3x3_2b", _b3.OutChannels, 3, 1, padH: 1);
        _d1 = Conv("branch3x3dbl_1", cin, 1, 1);
        _d2 = Conv("branch3x3dbl_2", _d1.OutChannels, 3, 3, padH: 1, padW: 1);
        _d3a = Conv("branch3x3dbl_3a", _d2.OutChannels, 1, 3, padW: 1);
        _d3b = Conv("branch3x3dbl_3b", _d2.OutChannels, 3, 1, padH: 1);
        _pool = Conv("branch_pool", cin, 1, 1);
    }

    public override int OutChannels =>
        _b1.OutChannels + _b3a.OutChannels + _b3b.OutChannels + _d3a.OutChannels + _d3b.OutChannels + _pool.OutChannels;

    public override Tensor Forward(Tensor x)
    {
        var b3 = _b3.Forward(x);
        var d = Chain(x, _d1, _d2);
        var pooled = _maxPool ? Ops.MaxPool2d(x, 3, 1, 1) : AvgPool3(x);
        return Ops.Concat([_b1.Forward(x), _b3a.Forward(b3), _b3b.Forward(b3), _d3a.Forward(d), _d3b.Forward(d), _pool.Forward(pooled)], 1);
    }
}
