// OpProfile's split of an inference pass: the FLOPs of a Linear, conv or attention go to its compute entry, not to the
// entry of the weight packing (or transform) that the kernel marks first, nor to the ops before it.
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;
using InstaFlow.Tensors.Kernels;

namespace InstaFlow.Tests.Tensors;

[Collection(EngineSettings.Name)] // the conv case forces its algorithm through Conv2dWinograd.Mode
public class OpProfileTests
{
    private static IReadOnlyList<OpTiming> Profile(Func<Tensor> op)
    {
        using var scope = TensorScope.Begin();
        using var ng = GradMode.NoGrad();
        var p = new OpProfile();
        using (p.Start()) op();
        return p.Entries();
    }

    private static long Flops(IReadOnlyList<OpTiming> entries, string op) =>
        entries.Where(e => e.Op == op).Sum(e => e.Flops);

    [Fact]
    public void Profile_LinearPackingItsWeight_FlopsBookedToTheGemm()
    {
        var x = TestUtil.Random(1, 40, 48);
        var w = TestUtil.Random(2, 36, 48);
        var e = Profile(() => Ops.Linear(x, w, null));
        Assert.Contains(e, t => t.Op == "Linear: packing the weight");
        Assert.Equal(0, Flops(e, "Linear: packing the weight"));
        Assert.Equal(2L * 40 * 36 * 48, Flops(e, "Linear: GEMM (with packing the activations)"));
    }

    [Fact]
    public void Profile_Attention_FlopsBookedToTheAttention()
    {
        var q = TestUtil.Random(5, 1, 33, 16);
        var k = TestUtil.Random(6, 1, 21, 16);
        var v = TestUtil.Random(7, 1, 21, 16);
        var e = Profile(() => Ops.Attention(q, k, v, 2));
        Assert.Equal(0, Flops(e, "other ops (elementwise, copies, embeddings)"));
        Assert.Equal(new AttentionShape(1, 2, 33, 21, 8, false).Flops, Flops(e, "attention"));
    }

    [Theory]
    [InlineData(WinogradMode.Never, "conv direct: packing the weight", "conv direct: implicit GEMM")]
    [InlineData(WinogradMode.Always, "conv Winograd: transforming the weight", "conv Winograd: GEMMs and data transforms")]
    public void Profile_ConvPackingItsWeight_FlopsBookedToTheConv(WinogradMode mode, string packing, string compute)
    {
        var x = TestUtil.Random(3, 1, 24, 20, 20);
        var w = TestUtil.Random(4, 40, 24, 3, 3);
        var saved = Conv2dWinograd.Mode;
        IReadOnlyList<OpTiming> e;
        try
        {
            Conv2dWinograd.Mode = mode;
            e = Profile(() => Ops.Conv2d(x, w, null, 1, 1));
        }
        finally { Conv2dWinograd.Mode = saved; }
        const int o = 20;
        Assert.Contains(e, t => t.Op == packing);
        Assert.Equal(0, Flops(e, packing));
        Assert.Equal(2L * 40 * o * o * 24 * 9, Flops(e, compute));
    }
}
