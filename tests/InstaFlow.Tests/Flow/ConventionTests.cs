// Flow conventions (network time mappings, velocity sign), time samplers and the toy experiment's error metric.
using InstaFlow.Flow;
using InstaFlow.Experiments;
using InstaFlow.Nn;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Random;

namespace InstaFlow.Tests.Flow;

public class ConventionTests
{
    [Theory]
    [InlineData(ModelTimeMapping.Unit, 0.25f, 0.25f)]
    [InlineData(ModelTimeMapping.InstaFlow, 0f, 1000f)]
    [InlineData(ModelTimeMapping.InstaFlow, 1f, 0f)]
    [InlineData(ModelTimeMapping.RectifiedFlow, 1f, 999f)]
    [InlineData(ModelTimeMapping.RectifiedFlow, 0f, 0f)]
    public void ModelTime_Mapping_GivesNetworkTime(ModelTimeMapping mapping, float t, float expected) =>
        Assert.Equal(expected, new FlowConvention(mapping).ModelTime(t));

    // Returns the network time as its "velocity", so both the mapping and the sign are visible in the field.
    private sealed class EchoTime : Module, IVelocityModel
    {
        public Tensor Forward(Tensor x, Tensor modelTime, Tensor? cond) => Ops.Add(Ops.MulScalar(x, 0f), FlowConvention.PerSample(modelTime, x.Rank));
    }

    [Fact]
    public void Field_NoiseMinusDataSign_IsFlippedToFlowDirection()
    {
        using var scope = TensorScope.Begin();
        var x = Tensor.Zeros(3, 2);
        var v = new FlowModel(new EchoTime(), FlowConvention.Sd3).Field()(x, 0.25f);
        Assert.All(v.ToArray(), e => Assert.Equal(-750f, e));
        var target = FlowConvention.Sd3.Target(Tensor.Zeros(1, 2), Tensor.Full(2f, 1, 2));
        Assert.All(target.ToArray(), e => Assert.Equal(-2f, e));
    }

    [Fact]
    public void Interpolate_Endpoints_AreNoiseAndData()
    {
        using var scope = TensorScope.Begin();
        var x0 = TestUtil.Random(1, 2, 3); var x1 = TestUtil.Random(2, 2, 3);
        var xt = FlowConvention.Interpolate(x0, x1, Tensor.FromArray([0f, 1f], 2));
        TestUtil.AssertClose(x0.Span[..3], xt.Span[..3], 0f, what: "t = 0");
        TestUtil.AssertClose(x1.Span[3..], xt.Span[3..], 1e-7f, what: "t = 1");
    }

    [Fact]
    public void TimeSamplers_Draws_StayInRangeWithExpectedMedian()
    {
        var rng = new TorchGenerator(4);
        var u = new UniformTime(0.01f);
        var ln = new LogitNormalTime(1f, 0.5f);
        var us = Enumerable.Range(0, 4000).Select(_ => u.Next(rng)).ToArray();
        var ls = Enumerable.Range(0, 4000).Select(_ => ln.Next(rng)).OrderBy(x => x).ToArray();
        Assert.True(us.Min() >= 0.01f && us.Max() <= 0.99f, $"uniform draws outside [0.01, 0.99]: {us.Min()}..{us.Max()}");
        float median = ls[2000], expected = 1f / (1f + MathF.Exp(-1f));
        Assert.True(MathF.Abs(median - expected) < 0.02f, $"logit-normal median {median}, expected {expected}");
    }

    [Fact]
    public void EnergyDistance_SameLawSmallShiftedLarge()
    {
        using var scope = TensorScope.Begin();
        var rng = new TorchGenerator(9);
        var a = Toy2d.Target(rng, 1000); var b = Toy2d.Target(rng, 1000);
        var shifted = Ops.AddScalar(Toy2d.Target(rng, 1000), 1f);
        double same = Toy2d.EnergyDistance(a, b), moved = Toy2d.EnergyDistance(a, shifted);
        Assert.True(same < 0.02 && moved > 0.2, $"energy distance: same law {same}, shifted by (1, 1) {moved}");
    }
}
