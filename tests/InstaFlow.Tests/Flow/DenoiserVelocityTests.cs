// The SD UNet behind the flow toolkit: the adapter passes times and conditions through unchanged, and a few
// rectified-flow training steps on the tiny UNet lower the loss (gradients flow through every UNet op).
using InstaFlow.Flow;
using InstaFlow.Nn;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Autograd;
using InstaFlow.Tests.Models;

namespace InstaFlow.Tests.Flow;

public class DenoiserVelocityTests
{
    [Fact]
    public void Forward_TinyUnet_EqualsDirectUnetCall()
    {
        using var scope = TensorScope.Begin();
        using var ng = GradMode.NoGrad();
        var unet = ModelGoldenTests.LoadUnet();
        var x = TestUtil.Random(1, 2, 4, 8, 8);
        var ctx = TestUtil.Random(2, 2, 77, 32);
        var direct = unet.Forward(x, new[] { 1000f, 250f }, ctx);
        var viaFlow = new DenoiserVelocity(unet).Forward(x, Tensor.FromArray(new[] { 1000f, 250f }, 2), ctx);
        TestUtil.AssertClose(direct, viaFlow, 0f, what: "adapter output");
    }

    [Fact]
    public void RectifiedFlowSteps_TinyUnet_LossFalls()
    {
        var unet = ModelGoldenTests.LoadUnet();
        var flow = new FlowModel(new DenoiserVelocity(unet), FlowConvention.InstaFlow);
        var opt = new AdamW(unet.Parameters(), 1e-3f) { WeightDecay = 0f };
        var gen = new InstaFlow.Tensors.Random.TorchGenerator(3);
        using var dataScope = TensorScope.Begin();
        var x1 = TestUtil.Random(4, 2, 4, 8, 8);
        var ctx = TestUtil.Random(5, 2, 77, 32);
        var x0 = gen.Randn(2, 4, 8, 8);
        var t = Tensor.FromArray(new[] { 0.3f, 0.8f }, 2);
        float Loss(bool step)
        {
            using var s = TensorScope.Begin();
            var tt = Ops.Reshape(t, 2, 1, 1, 1);
            var xt = Ops.Add(Ops.Mul(tt, x1), Ops.Mul(Ops.AddScalar(Ops.Neg(tt), 1f), x0));
            var loss = Ops.MeanAll(Ops.Square(Ops.Sub(flow.Predict(xt, t, ctx), Ops.Sub(x1, x0))));
            float v = loss.Item();
            if (step) { opt.ZeroGrad(); loss.Backward(); opt.Step(); }
            return v;
        }
        float first = Loss(step: true);
        for (int i = 0; i < 5; i++) Loss(step: true);
        float last = Loss(step: false);
        Assert.True(last < 0.8f * first, $"loss went from {first} to {last}");
    }
}
