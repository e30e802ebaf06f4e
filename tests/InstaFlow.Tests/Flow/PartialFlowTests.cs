// Rectified-flow image-to-image (PartialFlow) on a 2D toy whose flow is known in closed form, and on the tiny SD-1.5
// pipeline: strength 1 is text-to-image, strength 0 returns the encoded image.
using InstaFlow.Flow;
using InstaFlow.Pipelines;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Random;
using InstaFlow.Tests.Pipelines;

namespace InstaFlow.Tests.Flow;

public class PartialFlowTests
{
    // The rectified flow of the coupling (noise, fixed point a) in 2D: v(x, t) = (a - x) / (1 - t), straight lines to a.
    private static readonly float[] A = [1.5f, -0.5f];

    private static Tensor Field(Tensor x, double t)
    {
        var v = Tensor.Empty(x.ShapeArray());
        var xs = x.Span;
        var vs = v.Span;
        for (int i = 0; i < xs.Length; i++) vs[i] = (float)((A[i % 2] - xs[i]) / (1 - t));
        return v;
    }

    private static Tensor Points(ulong seed) => new TorchGenerator(seed).Randn(64, 2);

    [Fact]
    public void PartialFlow_StrengthOne_EqualsSamplingFromNoise()
    {
        using var scope = TensorScope.Begin();
        var (noise, data) = (Points(1), Points(2));
        var full = new EulerSampler(4).Sample(Field, noise).X;
        var partial = PartialFlow.Run(new EulerSampler(4), Field, noise, data, 1.0);
        Assert.True(TestUtil.MaxAbsDiff(full.Span, partial.Span) == 0, $"max diff {TestUtil.MaxAbsDiff(full.Span, partial.Span)}");
    }

    [Fact]
    public void PartialFlow_StrengthZero_ReturnsData()
    {
        using var scope = TensorScope.Begin();
        var (noise, data) = (Points(1), Points(2));
        var r = PartialFlow.Run(new EulerSampler(1), Field, noise, data, 0.0);
        Assert.True(TestUtil.MaxAbsDiff(data.Span, r.Span) == 0, $"max diff {TestUtil.MaxAbsDiff(data.Span, r.Span)}");
    }

    [Theory]
    [InlineData(0.3)]
    [InlineData(0.75)]
    public void PartialFlow_StraightToyFlow_OneStepLandsOnTarget(double strength)
    {
        using var scope = TensorScope.Begin();
        var (noise, data) = (Points(3), Points(4));
        var (x, t) = PartialFlow.Start(noise, data, strength);
        Assert.Equal(1 - strength, t, 12);
        TestUtil.AssertClose(Ops.Add(Ops.MulScalar(noise, (float)strength), Ops.MulScalar(data, (float)(1 - strength))), x, 0f, what: "start state");
        // A straight flow is integrated exactly by one Euler step, from any start on the path.
        var r = PartialFlow.Run(new EulerSampler(1), Field, noise, data, strength);
        var target = Tensor.FromArray(Enumerable.Range(0, 128).Select(i => A[i % 2]).ToArray(), 64, 2);
        TestUtil.AssertClose(target, r, 1e-5f, what: $"strength {strength}");
    }

    [Fact]
    public void PartialFlow_StrengthOutOfRange_Throws() =>
        Assert.Throws<InvalidInputException>(() => PartialFlow.Start(Points(1), Points(2), 1.5));

    private static InitImage TestImage(int size)
    {
        var px = new byte[size * size * 3];
        for (int i = 0; i < px.Length; i++) px[i] = (byte)(i * 37 % 251);
        return new InitImage(px, size, size);
    }

    [Fact]
    public void Pipeline_InitImageStrengthOne_EqualsTextToImage()
    {
        var pipe = new RectifiedFlowPipeline(RectifiedFlowPipelineTests.Model);
        var req = new GenerationRequest { Prompts = ["a photo of a cat"], Seed = 5, Steps = 2, Guidance = 2f };
        var t2i = pipe.Generate(req);
        var i2i = pipe.Generate(req with { InitImage = TestImage(t2i.Width), Strength = 1f });
        Assert.True(TestUtil.MaxAbsDiff(t2i.FinalLatents.Span, i2i.FinalLatents.Span) == 0, $"max diff {TestUtil.MaxAbsDiff(t2i.FinalLatents.Span, i2i.FinalLatents.Span)}");
        Assert.Equal(t2i.ImagesHwc[0], i2i.ImagesHwc[0]);
        t2i.FinalLatents.Dispose(); i2i.FinalLatents.Dispose();
    }

    [Fact]
    public void Pipeline_InitImageStrengthZero_ReturnsEncodedImage()
    {
        var model = RectifiedFlowPipelineTests.Model;
        var pipe = new RectifiedFlowPipeline(model);
        int size = InstaFlow.Pipelines.ImageSize.Default(model);
        var image = TestImage(size);
        var res = pipe.GenerateImages(new GenerationRequest { Prompts = ["a photo of a cat"], Seed = 5, Steps = 1, InitImage = image, Strength = 0f }, 2);
        using var scope = TensorScope.Begin();
        using var noGrad = InstaFlow.Tensors.Autograd.GradMode.NoGrad(); // the pipeline's (inference) kernels
        var encoded = model.LatentEncoder.EncodeLatents(InstaFlow.IO.ImageTensors.ToTensorSigned(image.Hwc, 1, size, size));
        for (int i = 0; i < 2; i++)
            TestUtil.AssertClose(encoded, Ops.Narrow(res.FinalLatents, 0, i, 1), 0f, what: $"image {i}");
        res.FinalLatents.Dispose();
    }

    [Fact]
    public void Pipeline_InitImageHalfStrength_StaysCloserToTheImage()
    {
        var model = RectifiedFlowPipelineTests.Model;
        var pipe = new RectifiedFlowPipeline(model);
        int size = InstaFlow.Pipelines.ImageSize.Default(model);
        var image = TestImage(size);
        using var scope = TensorScope.Begin();
        var encoded = model.LatentEncoder.EncodeLatents(InstaFlow.IO.ImageTensors.ToTensorSigned(image.Hwc, 1, size, size));
        double Distance(float s)
        {
            var r = pipe.Generate(new GenerationRequest { Prompts = ["a photo of a cat"], Seed = 5, Steps = 1, InitImage = image, Strength = s });
            double d = r.FinalLatents.ToArray().Zip(encoded.ToArray(), (a, b) => (double)(a - b) * (a - b)).Sum();
            r.FinalLatents.Dispose();
            return d;
        }
        double low = Distance(0.2f), high = Distance(0.9f);
        Assert.True(low < high, $"strength 0.2 is {low} from the image, 0.9 is {high}");
    }
}
