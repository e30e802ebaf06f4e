// The fused optimizer step (gradient clipping factor, AdamW, EMA in one vectorized pass) against the separate scalar
// passes it replaces, bit for bit, on odd sizes and one or two threads.
using InstaFlow.Nn;
using InstaFlow.Tensors;

namespace InstaFlow.Tests.Training;

[Collection(EngineSettings.Name)]
public class OptimizerTests
{
    /// <summary>The separate passes the fused step replaces: clip the gradients, the scalar AdamW loop, the scalar EMA.</summary>
    private static void ReferenceStep(float[][] w, float[][] g, float[][] m, float[][] v, float[][] shadow, long step, float scale)
    {
        const float lr = 1e-3f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f, d = 0.995f;
        float bc1 = 1f - MathF.Pow(b1, step), bc2 = 1f - MathF.Pow(b2, step), decay = 1f - lr * wd;
        for (int i = 0; i < w.Length; i++)
            for (int j = 0; j < w[i].Length; j++)
            {
                float gj = g[i][j] * scale;
                m[i][j] = b1 * m[i][j] + (1 - b1) * gj;
                v[i][j] = b2 * v[i][j] + (1 - b2) * gj * gj;
                float mhat = m[i][j] / bc1, vhat = v[i][j] / bc2;
                w[i][j] = w[i][j] * decay - lr * mhat / (MathF.Sqrt(vhat) + eps);
                shadow[i][j] = d * shadow[i][j] + (1 - d) * w[i][j];
            }
    }

    [Theory]
    [InlineData(1, 0.5f)]
    [InlineData(2, 0.5f)]
    [InlineData(2, 1000f)]
    public void AdamWFusedStep_OddSizesClippedOrNot_BitwiseEqualsSeparatePasses(int threads, float maxNorm)
    {
        int[] sizes = [1, 17, 40_003, 5];
        var ps = sizes.Select((n, i) => { var p = new Parameter([n]); TestUtil.RandomArray(10 + i, n).CopyTo(p.Value.Span); return p; }).ToArray();
        var w = ps.Select(p => p.Value.Span.ToArray()).ToArray();
        var m = sizes.Select(n => new float[n]).ToArray();
        var v = sizes.Select(n => new float[n]).ToArray();
        var shadow = w.Select(x => (float[])x.Clone()).ToArray();
        var opt = new AdamW(ps, 1e-3f);
        var ema = new Ema(ps, 0.995f);
        int saved = Par.Threads;
        try
        {
            Par.Threads = threads;
            for (int step = 1; step <= 3; step++)
            {
                var g = sizes.Select((n, i) => TestUtil.RandomArray(100 * step + i, n, scale: 3f)).ToArray();
                for (int i = 0; i < ps.Length; i++) ps[i].Value.Grad = Tensor.FromArray(g[i], sizes[i]);
                float scale = GradClip.Scale(ps, maxNorm);
                Assert.Equal(maxNorm < 1f, scale < 1f);
                opt.Step(scale, ema);
                ReferenceStep(w, g, m, v, shadow, step, scale);
                for (int i = 0; i < ps.Length; i++)
                {
                    Assert.Equal(w[i], ps[i].Value.Span.ToArray());
                    Assert.Equal(shadow[i], ema.Shadow[i].Span.ToArray());
                }
            }
        }
        finally { Par.Threads = saved; }
    }
}
