// PyTorch CPU generator parity: torch.manual_seed + torch.randn goldens, state round trips and the uniform path.
using System.Text.Json;
using InstaFlow.IO;
using InstaFlow.Tensors;
using InstaFlow.Tensors.Random;

namespace InstaFlow.Tests.Tensors;

public class TorchGeneratorTests
{
    public static IEnumerable<object[]> GoldenCases()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(TestUtil.Fixtures, "rng", "randn.json")));
        foreach (var c in doc.RootElement.EnumerateArray())
            yield return new object[] { c.GetProperty("name").GetString()!, c.GetProperty("seed").GetUInt64(),
                c.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()).ToArray() };
    }

    [Theory]
    [MemberData(nameof(GoldenCases))]
    public void Randn_TorchGolden_MatchesFirstAndSecondDraw(string name, ulong seed, int[] shape)
    {
        using var file = SafeTensors.Open(Path.Combine(TestUtil.Fixtures, "rng", "randn.safetensors"));
        using var scope = TensorScope.Begin();
        var g = new TorchGenerator(seed);
        foreach (var key in new[] { name, name + "_second" })
        {
            using var expected = file.ReadF32(key);
            var actual = g.Randn(shape);
            Assert.Equal(expected.ShapeArray(), actual.ShapeArray());
            TestUtil.AssertClose(expected.Span, actual.Span, 1e-5f, what: key);
            int bitwise = 0;
            for (int i = 0; i < expected.Numel; i++) if (expected.Span[i] == actual.Span[i]) bitwise++;
            Assert.True(bitwise == expected.Numel, $"{key}: only {bitwise}/{expected.Numel} values are bitwise equal");
        }
    }

    [Fact]
    public void NextUInt32_Seed5489_MatchesReferenceMt19937()
    {
        // The 10000th output of the standard mt19937 with its default seed 5489 is 4123659995 (C++ [rand.predef]).
        var g = new TorchGenerator(5489);
        uint v = 0;
        for (int i = 0; i < 10000; i++) v = g.NextUInt32();
        Assert.Equal(4123659995u, v);
    }

    [Fact]
    public void ManualSeed_Above32Bits_UsesLow32BitsButKeepsSeed()
    {
        var a = new TorchGenerator(4294967301UL);
        var b = new TorchGenerator(5);
        Assert.Equal(b.NextUInt32(), a.NextUInt32());
        Assert.Equal(4294967301UL, a.InitialSeed);
    }

    [Fact]
    public void GetState_SetState_ResumesIncludingCachedNormal()
    {
        var g = new TorchGenerator(1234);
        var first = new float[7];
        g.FillNormal(first); // odd count on the scalar path leaves a cached second Box-Muller value
        byte[] state = g.GetState();
        Assert.Equal(TorchGenerator.StateBytes, state.Length);
        var expected = new float[40];
        g.FillNormal(expected.AsSpan(0, 5));
        g.FillNormal(expected.AsSpan(5, 35));

        var h = new TorchGenerator(0);
        h.SetState(state);
        Assert.Equal(1234UL, h.InitialSeed);
        var actual = new float[40];
        h.FillNormal(actual.AsSpan(0, 5));
        h.FillNormal(actual.AsSpan(5, 35));
        TestUtil.AssertClose(expected, actual, 0f, what: "resumed stream");
    }

    [Fact]
    public void SetState_WrongSize_Throws()
    {
        var ex = Assert.Throws<ArgumentException>(() => new TorchGenerator(0).SetState(new byte[100]));
        Assert.Contains("5056", ex.Message);
    }

    [Fact]
    public void Rand_Seed0_MatchesTorchRandFirstValues()
    {
        // torch.manual_seed(0); torch.rand(3) -> [0.4962566, 0.7682218, 0.08847743]
        var g = new TorchGenerator(0);
        using var t = g.Rand(3);
        TestUtil.AssertClose(new[] { 0.4962566f, 0.7682218f, 0.08847743f }, t.Span, 1e-7f, what: "rand");
    }

    [Fact]
    public void Normal_MeanStd_ShiftsAndScalesRandn()
    {
        using var scope = TensorScope.Begin();
        var z = new TorchGenerator(42).Randn(3, 11);
        var x = new TorchGenerator(42).Normal(2f, 0.5f, 3, 11);
        var expected = z.ToArray().Select(v => v * 0.5f + 2f).ToArray();
        TestUtil.AssertClose(expected, x.Span, 1e-6f, what: "normal(2, 0.5)");
    }

    [Theory]
    [InlineData("case0")]
    [InlineData("case1")]
    [InlineData("case2")]
    public void Randn_SeededPipelineCase_EqualsInitialLatents(string name)
    {
        string dir = Path.Combine(TestUtil.Fixtures, "e2e_seeded");
        using var cases = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "cases.json")));
        ulong seed = cases.RootElement.EnumerateArray().Single(c => c.GetProperty("name").GetString() == name).GetProperty("seed").GetUInt64();
        using var file = SafeTensors.Open(Path.Combine(dir, name + ".safetensors"));
        using var expected = file.ReadF32("initial_latents");
        using var scope = TensorScope.Begin();
        var actual = new TorchGenerator(seed).Randn(expected.ShapeArray());
        TestUtil.AssertClose(expected.Span, actual.Span, 0f, what: name + " initial_latents");
    }

    [Fact]
    public void FillUniform_Range_StaysInsideAndIsSeeded()
    {
        var a = new float[1001];
        var b = new float[1001];
        new TorchGenerator(3).FillUniform(a, -2f, 3f);
        new TorchGenerator(3).FillUniform(b, -2f, 3f);
        Assert.All(a, v => Assert.InRange(v, -2f, 3f));
        TestUtil.AssertClose(a, b, 0f, what: "same seed");
    }
}
