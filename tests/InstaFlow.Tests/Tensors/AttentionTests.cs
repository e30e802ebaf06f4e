// Blocked attention kernels against the double-precision oracle (odd shapes, causal, cross, large scores, the small
// heads of the training networks), the fast exp against Math.Exp, and bitwise equality for 1 and 2 threads.
using InstaFlow.Tensors;
using System.Runtime.Intrinsics;
using InstaFlow.Tensors.Kernels;

namespace InstaFlow.Tests.Tensors;

public unsafe class AttentionTests
{
    internal sealed class Case
    {
        public readonly AttentionShape S;
        public readonly float[] Q, K, V, Go;
        public readonly float Scale;

        public Case(AttentionShape s, int seed, float magnitude = 1f)
        {
            S = s;
            Q = TestUtil.RandomArray(seed, (long)s.Batch * s.Tq * s.Width, magnitude);
            K = TestUtil.RandomArray(seed + 1, (long)s.Batch * s.Tk * s.Width, magnitude);
            V = TestUtil.RandomArray(seed + 2, (long)s.Batch * s.Tk * s.Width);
            Go = TestUtil.RandomArray(seed + 3, (long)s.Batch * s.Tq * s.Width);
            Scale = 1f / MathF.Sqrt(s.HeadDim);
        }

        public (float[] o, float[] lse) Forward()
        {
            var o = new float[Q.Length];
            var lse = new float[(long)S.Batch * S.Heads * S.Tq];
            fixed (float* q = Q, k = K, v = V, po = o, pl = lse) Attention.Forward(S, q, k, v, po, pl, Scale);
            return (o, lse);
        }

        public (float[] gq, float[] gk, float[] gv) Backward()
        {
            var (o, lse) = Forward();
            var gq = new float[Q.Length]; var gk = new float[K.Length]; var gv = new float[V.Length];
            fixed (float* q = Q, k = K, v = V, po = o, pl = lse, go = Go, pgq = gq, pgk = gk, pgv = gv)
                Attention.Backward(S, q, k, v, po, pl, go, Scale, pgq, pgk, pgv);
            return (gq, gk, gv);
        }
    }

    private static float Tolerance(float[] expected, float rel)
    {
        float max = 0;
        foreach (var x in expected) max = MathF.Max(max, MathF.Abs(x));
        return rel * MathF.Max(1f, max);
    }

    [Theory]
    [InlineData(2, 1, 1, 1, 1, false)]
    [InlineData(2, 3, 7, 7, 7, true)]
    [InlineData(2, 3, 17, 33, 40, false)]
    [InlineData(2, 8, 33, 17, 64, false)]
    [InlineData(2, 1, 65, 65, 80, true)]
    [InlineData(2, 3, 257, 257, 40, true)]
    [InlineData(2, 1, 65, 7, 513, false)]
    [InlineData(2, 8, 1, 257, 7, false)]
    [InlineData(2, 1, 33, 65, 1, true)]
    [InlineData(2, 3, 257, 17, 80, true)]
    [InlineData(2, 8, 130, 77, 40, false)]
    public void Forward_OddShapes_MatchesReference(int batch, int heads, int tq, int tk, int d, bool causal)
    {
        AssertForwardMatchesReference(new Case(new AttentionShape(batch, heads, tq, tk, d, causal), tq * 31 + tk * 7 + d));
    }

    private static void AssertForwardMatchesReference(Case c)
    {
        var (o, lse) = c.Forward();
        var expected = new float[o.Length];
        fixed (float* q = c.Q, k = c.K, v = c.V, pe = expected) AttentionReference.Forward(c.S, q, k, v, pe, c.Scale);
        TestUtil.AssertClose(expected, o, 2e-6f, 1e-5f, $"attention {c.S}");
        TestUtil.AssertClose(ReferenceLse(c), lse, 2e-6f, 1e-6f, $"lse {c.S}");
    }

    private static void AssertBackwardMatchesReference(Case c)
    {
        var (gq, gk, gv) = c.Backward();
        var eq = new float[gq.Length]; var ek = new float[gk.Length]; var ev = new float[gv.Length];
        fixed (float* q = c.Q, k = c.K, v = c.V, go = c.Go, pq = eq, pk = ek, pv = ev)
            AttentionReference.Backward(c.S, q, k, v, go, c.Scale, pq, pk, pv);
        TestUtil.AssertClose(eq, gq, Tolerance(eq, 2e-5f), 0, $"gq {c.S}");
        TestUtil.AssertClose(ek, gk, Tolerance(ek, 2e-5f), 0, $"gk {c.S}");
        TestUtil.AssertClose(ev, gv, Tolerance(ev, 2e-5f), 0, $"gv {c.S}");
    }

    // Head dims 8-32 take the key-major forward, 40 the query-major one; token counts around the 64-query and
    // 8-row gather blocks, 16-token cross-attention and causal self-attention as in the training networks.
    [Theory]
    [InlineData(3, 4, 256, 256, 16, false)]
    [InlineData(3, 4, 71, 16, 16, false)]
    [InlineData(2, 4, 64, 64, 32, false)]
    [InlineData(2, 3, 65, 16, 32, false)]
    [InlineData(2, 4, 16, 16, 32, true)]
    [InlineData(2, 2, 97, 97, 8, true)]
    [InlineData(2, 2, 23, 9, 8, false)]
    [InlineData(2, 3, 129, 131, 12, true)]
    [InlineData(2, 2, 33, 15, 12, false)]
    [InlineData(2, 3, 57, 200, 24, false)]
    [InlineData(2, 2, 150, 150, 24, true)]
    [InlineData(2, 2, 41, 17, 40, true)]
    [InlineData(2, 2, 130, 131, 40, false)]
    public void ForwardBackward_SmallHeads_MatchReference(int batch, int heads, int tq, int tk, int d, bool causal)
    {
        var c = new Case(new AttentionShape(batch, heads, tq, tk, d, causal), tq * 17 + tk * 5 + d);
        AssertForwardMatchesReference(c);
        AssertBackwardMatchesReference(c);
    }

    [Fact]
    public void Forward_LargeScoresSmallHead_StaysFiniteAndMatchesReference()
    {
        // The key-major softmax keeps its running max per lane: scores of several hundred must not overflow there either.
        var c = new Case(new AttentionShape(2, 2, 70, 140, 8, true), 6, magnitude: 40f);
        var (o, _) = c.Forward();
        var expected = new float[o.Length];
        fixed (float* q = c.Q, k = c.K, v = c.V, pe = expected) AttentionReference.Forward(c.S, q, k, v, pe, c.Scale);
        TestUtil.AssertClose(expected, o, 1e-4f, 1e-4f, "large scores, head dim 8");
    }

    [Fact]
    public void Forward_LargeScores_StaysFiniteAndMatchesReference()
    {
        // Scores of several hundred: a softmax without the running max would overflow exp.
        var c = new Case(new AttentionShape(2, 2, 70, 140, 16, false), 5, magnitude: 30f);
        var (o, _) = c.Forward();
        var expected = new float[o.Length];
        fixed (float* q = c.Q, k = c.K, v = c.V, pe = expected) AttentionReference.Forward(c.S, q, k, v, pe, c.Scale);
        TestUtil.AssertClose(expected, o, 1e-4f, 1e-4f, "large scores");
    }

    [Fact]
    public void Forward_CrossAttention4096x77_MatchesReferenceOnSampledHeads()
    {
        // The UNet's text cross-attention geometry; one batch keeps the double oracle affordable.
        var c = new Case(new AttentionShape(1, 2, 4096, 77, 40, false), 11);
        var (o, _) = c.Forward();
        var expected = new float[o.Length];
        fixed (float* q = c.Q, k = c.K, v = c.V, pe = expected) AttentionReference.Forward(c.S, q, k, v, pe, c.Scale);
        TestUtil.AssertClose(expected, o, 2e-6f, 1e-5f, "cross 4096x77");
    }

    private static float[] ReferenceLse(Case c)
    {
        var s = c.S;
        var lse = new float[(long)s.Batch * s.Heads * s.Tq];
        for (int b = 0; b < s.Batch; b++)
            for (int h = 0; h < s.Heads; h++)
                for (int i = 0; i < s.Tq; i++)
                {
                    int keys = s.Causal ? Math.Min(s.Tk, i + 1) : s.Tk;
                    var sc = new double[keys];
                    for (int j = 0; j < keys; j++)
                    {
                        double acc = 0;
                        for (int e = 0; e < s.HeadDim; e++)
                            acc += (double)c.Q[((long)b * s.Tq + i) * s.Width + h * s.HeadDim + e] * c.K[((long)b * s.Tk + j) * s.Width + h * s.HeadDim + e];
                        sc[j] = acc * c.Scale;
                    }
                    double max = sc.Max();
                    lse[((long)b * s.Heads + h) * s.Tq + i] = (float)(max + Math.Log(sc.Sum(x => Math.Exp(x - max))));
                }
        return lse;
    }

    [Theory]
    [InlineData(2, 1, 1, 1, 1, false)]
    [InlineData(2, 3, 7, 17, 7, true)]
    [InlineData(2, 3, 17, 33, 40, false)]
    [InlineData(2, 1, 65, 65, 80, true)]
    [InlineData(2, 8, 33, 7, 64, false)]
    [InlineData(2, 1, 130, 70, 513, true)]
    [InlineData(2, 3, 70, 130, 16, true)]
    public void Backward_OddShapes_MatchesReference(int batch, int heads, int tq, int tk, int d, bool causal)
    {
        var c = new Case(new AttentionShape(batch, heads, tq, tk, d, causal), tq * 13 + tk + d);
        AssertBackwardMatchesReference(c);
    }

    [Fact]
    public void Exp_WholeRange_MatchesMathExpAndFlushesMaskedToZero()
    {
        float maxRel = 0;
        for (float x = -87f; x <= 88f; x += 0.0137f)
        {
            var v = AttentionTiles.Exp(Vector512.Create(x)).ToScalar();
            float rel = (float)Math.Abs(v / Math.Exp(x) - 1);
            maxRel = MathF.Max(maxRel, rel);
        }
        Assert.True(maxRel < 2.5e-7f, $"fast exp: max relative error {maxRel}");
        Assert.Equal(0f, AttentionTiles.Exp(Vector512.Create(float.NegativeInfinity)).ToScalar());
        Assert.Equal(0f, AttentionTiles.Exp(Vector512.Create(-120f)).ToScalar());
        Assert.Equal(float.PositiveInfinity, AttentionTiles.Exp(Vector512.Create(100f)).ToScalar());
    }
}

[Collection(EngineSettings.Name)]
public class AttentionThreadTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ForwardBackward_OneVsTwoThreads_BitwiseIdentical(bool causal)
    {
        var c = new AttentionTests.Case(new AttentionShape(2, 3, 150, 200, 40, causal), 3);
        ThreadDeterminism.AssertOneVsTwoIdentical(() =>
        {
            var (o, lse) = c.Forward();
            var (gq, gk, gv) = c.Backward();
            return new[] { ("output", o), ("lse", lse), ("gq", gq), ("gk", gk), ("gv", gv) };
        });
    }

    [Theory]
    [InlineData(false, 16)]
    [InlineData(true, 12)]
    public void ForwardBackward_SmallHeadOneVsTwoThreads_BitwiseIdentical(bool causal, int d)
    {
        var c = new AttentionTests.Case(new AttentionShape(3, 4, 150, 130, d, causal), 4);
        ThreadDeterminism.AssertOneVsTwoIdentical(() =>
        {
            var (o, lse) = c.Forward();
            var (gq, gk, gv) = c.Backward();
            return new[] { ("output", o), ("lse", lse), ("gq", gq), ("gk", gk), ("gv", gv) };
        });
    }
}
