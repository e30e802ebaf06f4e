// The element loop of the fused optimizer step: gradient scaling (clipping), AdamW and the EMA of the new weights in
// one vectorized pass, with the same IEEE operations per element as the scalar formulas (no fused multiply-adds).
using System.Runtime.Intrinsics;

namespace InstaFlow.Nn;

internal readonly unsafe struct AdamWStep
{
    private readonly float _lr, _b1, _b2, _c1, _c2, _eps, _decay, _bc1, _bc2, _scale, _emaDecay, _emaRest;

    public AdamWStep(float lr, float beta1, float beta2, float eps, float weightDecay, long step, float gradScale, float emaDecay)
    {
        (_lr, _b1, _b2, _eps, _scale, _emaDecay) = (lr, beta1, beta2, eps, gradScale, emaDecay);
        _c1 = 1 - beta1;
        _c2 = 1 - beta2;
        _decay = 1f - lr * weightDecay;
        _bc1 = 1f - MathF.Pow(beta1, step);
        _bc2 = 1f - MathF.Pow(beta2, step);
        _emaRest = 1 - emaDecay;
    }

    /// <summary>The AdamW update of n weights (and their EMA shadows when shadow is not null).</summary>
    public void Run(float* w, float* g, float* m, float* v, float* shadow, long n)
    {
        long j = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; j + 16 <= n; j += 16)
            {
                var gj = Vector512.Load(g + j) * _scale;
                var mj = Vector512.Load(m + j) * _b1 + gj * _c1;
                var vj = Vector512.Load(v + j) * _b2 + gj * _c2 * gj;
                var wj = Vector512.Load(w + j) * _decay - mj / _bc1 * _lr / (Vector512.Sqrt(vj / _bc2) + Vector512.Create(_eps));
                mj.Store(m + j);
                vj.Store(v + j);
                wj.Store(w + j);
                if (shadow != null) (Vector512.Load(shadow + j) * _emaDecay + wj * _emaRest).Store(shadow + j);
            }
        for (; j < n; j++)
        {
            float gj = g[j] * _scale;
            m[j] = _b1 * m[j] + _c1 * gj;
            v[j] = _b2 * v[j] + _c2 * gj * gj;
            float mhat = m[j] / _bc1, vhat = v[j] / _bc2;
            w[j] = w[j] * _decay - _lr * mhat / (MathF.Sqrt(vhat) + _eps);
            if (shadow != null) shadow[j] = _emaDecay * shadow[j] + _emaRest * w[j];
        }
    }

    /// <summary>shadow = decay * shadow + (1 - decay) * w over n floats.</summary>
    public void Ema(float* shadow, float* w, long n)
    {
        long j = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; j + 16 <= n; j += 16)
                (Vector512.Load(shadow + j) * _emaDecay + Vector512.Load(w + j) * _emaRest).Store(shadow + j);
        for (; j < n; j++) shadow[j] = _emaDecay * shadow[j] + _emaRest * w[j];
    }
}
