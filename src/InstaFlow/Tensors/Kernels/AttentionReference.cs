// Materialized attention in double precision (scores, softmax, weighted sum, and its gradients): the oracle
// that the blocked kernels are tested against.
namespace InstaFlow.Tensors.Kernels;

internal static unsafe class AttentionReference
{
    public static void Forward(in AttentionShape g, float* q, float* k, float* v, float* o, float scale)
    {
        int d = g.HeadDim;
        var p = new double[g.Tk];
        for (int b = 0; b < g.Batch; b++)
            for (int h = 0; h < g.Heads; h++)
                for (int i = 0; i < g.Tq; i++)
                {
                    Probabilities(g, q, k, scale, b, h, i, p);
                    for (int c = 0; c < d; c++)
                    {
                        double acc = 0;
                        for (int j = 0; j < g.Tk; j++) acc += p[j] * v[At(g, b, g.Tk, j, h) + c];
                        o[At(g, b, g.Tq, i, h) + c] = (float)acc;
                    }
                }
    }

    /// <summary>Gradients of Forward for output gradient go, from the materialized P: gq, gk, gv are overwritten.</summary>
    public static void Backward(in AttentionShape g, float* q, float* k, float* v, float* go, float scale, float* gq, float* gk, float* gv)
    {
        int d = g.HeadDim;
        var p = new double[g.Tk];
        var dp = new double[g.Tk];
        var gkd = new double[(long)g.Tk * d];
        var gvd = new double[(long)g.Tk * d];
        for (int b = 0; b < g.Batch; b++)
            for (int h = 0; h < g.Heads; h++)
            {
                Array.Clear(gkd); Array.Clear(gvd);
                for (int i = 0; i < g.Tq; i++)
                {
                    Probabilities(g, q, k, scale, b, h, i, p);
                    long qi = At(g, b, g.Tq, i, h);
                    double delta = 0;
                    for (int j = 0; j < g.Tk; j++)
                    {
                        double acc = 0;
                        for (int c = 0; c < d; c++) acc += (double)go[qi + c] * v[At(g, b, g.Tk, j, h) + c];
                        dp[j] = acc;
                        delta += p[j] * acc;
                    }
                    for (int c = 0; c < d; c++)
                    {
                        double acc = 0;
                        for (int j = 0; j < g.Tk; j++) acc += p[j] * (dp[j] - delta) * k[At(g, b, g.Tk, j, h) + c];
                        gq[qi + c] = (float)(acc * scale);
                    }
                    for (int j = 0; j < g.Tk; j++)
                    {
                        double ds = p[j] * (dp[j] - delta) * scale;
                        for (int c = 0; c < d; c++)
                        {
                            gkd[(long)j * d + c] += ds * q[qi + c];
                            gvd[(long)j * d + c] += p[j] * go[qi + c];
                        }
                    }
                }
                for (int j = 0; j < g.Tk; j++)
                    for (int c = 0; c < d; c++)
                    {
                        gk[At(g, b, g.Tk, j, h) + c] = (float)gkd[(long)j * d + c];
                        gv[At(g, b, g.Tk, j, h) + c] = (float)gvd[(long)j * d + c];
                    }
            }
    }

    private static long At(in AttentionShape g, int b, int t, int i, int h) => ((long)b * t + i) * g.Width + (long)h * g.HeadDim;

    /// <summary>p[j] = softmax over keys of scale * q_i . k_j, with causal keys j &gt; i at probability 0.</summary>
    private static void Probabilities(in AttentionShape g, float* q, float* k, float scale, int b, int h, int i, double[] p)
    {
        double max = double.NegativeInfinity;
        for (int j = 0; j < g.Tk; j++)
        {
            double acc = 0;
            for (int c = 0; c < g.HeadDim; c++) acc += (double)q[At(g, b, g.Tq, i, h) + c] * k[At(g, b, g.Tk, j, h) + c];
            p[j] = g.Causal && j > i ? double.NegativeInfinity : acc * scale;
            max = Math.Max(max, p[j]);
        }
        double sum = 0;
        for (int j = 0; j < g.Tk; j++) { p[j] = Math.Exp(p[j] - max); sum += p[j]; }
        for (int j = 0; j < g.Tk; j++) p[j] /= sum;
    }
}
