// ImageTensors: every byte maps to the float the old hand-written converters computed, layouts are HWC -> CHW, and
// the uint8 postprocess rounds halves to even like numpy.
using InstaFlow.IO;
using InstaFlow.Tensors;

namespace InstaFlow.Tests.IO;

public class ImageTensorsTests
{
    [Fact]
    public void ToChw_EveryByteValue_MatchesTheFloat32Formulas()
    {
        var bytes = Enumerable.Range(0, 256).Select(v => (byte)v).ToArray();
        // 256 one-channel pixels: CHW equals HWC, so element v is byte v's value.
        var unit = ImageTensors.ToChwUnit(bytes, 16, 16, channels: 1);
        var signed = ImageTensors.ToChwSigned(bytes, 16, 16, channels: 1);
        for (int v = 0; v < 256; v++)
        {
            Assert.Equal(BitConverter.SingleToInt32Bits((byte)v / 255f), BitConverter.SingleToInt32Bits(unit[v]));
            Assert.Equal(BitConverter.SingleToInt32Bits((byte)v / 127.5f - 1f), BitConverter.SingleToInt32Bits(signed[v]));
        }
        Assert.Equal(-1f, signed[0]);
        Assert.Equal(1f, signed[255]);
    }

    [Fact]
    public void ToTensorUnit_SeededBatch_IsChwPerImage()
    {
        var rng = new Random(7);
        int n = 2, w = 5, h = 3;
        var hwc = new byte[n * h * w * 3];
        rng.NextBytes(hwc);
        using var scope = TensorScope.Begin();
        var t = ImageTensors.ToTensorUnit(hwc, n, w, h);
        Assert.Equal(new[] { n, 3, h, w }, t.ShapeArray());
        var s = t.Span;
        for (int b = 0; b < n; b++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    for (int c = 0; c < 3; c++)
                        Assert.Equal(hwc[((b * h + y) * w + x) * 3 + c] / 255f, s[((b * 3 + c) * h + y) * w + x]);
    }

    [Fact]
    public void ToUint8Hwc_SignedRoundTrip_GivesTheSameBytes()
    {
        var rng = new Random(11);
        var images = new[] { new byte[4 * 6 * 3], new byte[4 * 6 * 3] };
        foreach (var img in images) rng.NextBytes(img);
        using var scope = TensorScope.Begin();
        var back = ImageTensors.ToUint8Hwc(ImageTensors.ToTensorSigned(images, 6, 4));
        Assert.Equal(images[0], back[0]);
        Assert.Equal(images[1], back[1]);
    }

    [Fact]
    public void ToUint8Hwc_HalfwayValues_RoundHalfToEven()
    {
        // Find float32 inputs whose scaled value is exactly 126.5 and 127.5: numpy gives 126 and 128 (half to even),
        // where rounding halves away from zero would give 127 and 128.
        float Exact(float target)
        {
            float x = (target / 255f - 0.5f) * 2f;
            for (int i = 0; i < 64; i++, x = MathF.BitIncrement(x))
                if ((x / 2f + 0.5f) * 255f == target) return x;
            throw new InvalidOperationException($"no float32 lands on {target}");
        }
        using var scope = TensorScope.Begin();
        var x = Tensor.FromArray([-2f, 2f, Exact(126.5f), Exact(127.5f)], 1, 1, 1, 4);
        Assert.Equal(new byte[] { 0, 255, 126, 128 }, ImageTensors.ToUint8Hwc(x)[0]);
    }
}
