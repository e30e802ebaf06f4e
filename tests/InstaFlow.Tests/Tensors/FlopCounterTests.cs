// The FLOP counter: forward FLOPs of linear, conv and attention, and their backward FLOPs (two products for linear
// and conv, five attention-sized products for attention), counted per thread.
using InstaFlow.Tensors;

namespace InstaFlow.Tests.Tensors;

public class FlopCounterTests
{
    private static (long Forward, long Backward) Count(Func<Tensor[], Tensor> f, params Tensor[] inputs)
    {
        using var scope = TensorScope.Begin();
        foreach (var x in inputs) x.RequiresGrad = true;
        FlopCounter.Reset();
        FlopCounter.Enabled = true;
        try
        {
            var y = f(inputs);
            long forward = FlopCounter.Flops;
            Ops.SumAll(y).Backward();
            return (forward, FlopCounter.Flops - forward);
        }
        finally { FlopCounter.Enabled = false; }
    }

    [Fact]
    public void Linear_ForwardAndBackward_CountsOneThenTwoProducts()
    {
        var (fwd, bwd) = Count(x => Ops.Linear(x[0], x[1], null), TestUtil.Random(1, 3, 5, 7), TestUtil.Random(2, 11, 7));
        Assert.Equal(2L * 15 * 7 * 11, fwd);
        Assert.Equal(2 * fwd, bwd);
    }

    [Fact]
    public void Conv2d_ForwardAndBackward_CountsOneThenTwoConvolutions()
    {
        var (fwd, bwd) = Count(x => Ops.Conv2d(x[0], x[1], null, 1, 1), TestUtil.Random(3, 2, 3, 9, 9), TestUtil.Random(4, 5, 3, 3, 3));
        Assert.Equal(2L * 2 * 5 * 9 * 9 * 3 * 3 * 3, fwd);
        Assert.Equal(2 * fwd, bwd);
    }

    [Fact]
    public void Attention_ForwardAndBackward_CountsTwoThenFiveProducts()
    {
        var (fwd, bwd) = Count(x => Ops.Attention(x[0], x[1], x[2], 2), TestUtil.Random(5, 2, 6, 8), TestUtil.Random(6, 2, 10, 8), TestUtil.Random(7, 2, 10, 8));
        Assert.Equal(4L * 2 * 2 * 6 * 10 * 4, fwd);
        Assert.Equal(5 * fwd / 2, bwd);
    }

    [Fact]
    public void FlopCounter_OtherThreadsWork_IsNotCounted()
    {
        FlopCounter.Reset();
        FlopCounter.Enabled = true;
        try
        {
            // a thread of its own: Task.Wait may run a task inline on the waiting thread
            var other = new Thread(() => { using var s = TensorScope.Begin(); Ops.MatMul(TestUtil.Random(8, 4, 4), TestUtil.Random(9, 4, 4)); });
            other.Start();
            other.Join();
            Assert.Equal(0, FlopCounter.Flops);
        }
        finally { FlopCounter.Enabled = false; }
    }
}
