// Implicit-GEMM B operands for conv2d: image patches packed straight into NR-column panels, zero padding decided
// while packing, so no im2col matrix is ever built. Forward uses patches (of one image or of a run of small ones);
// the weight gradient uses them transposed.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using System.Runtime.InteropServices;

namespace InstaFlow.Tensors.Kernels;

/// <remarks>
/// Columns past one image's output positions continue with the next image's (image holds consecutive images), so
/// a GEMM can cover several small images at once: a 4x4 map alone fills only half of a 32-column panel.
/// </remarks>
internal readonly unsafe struct Conv2dPatches(Conv2dShape s, float* image) : IPanelSource
{
    public float* Panel(int k0, int kc, int j0, int cols, float* dst)
    {
        const int NR = GemmKernels.NR;
        int ow = s.OutW, ohw = s.OutH * s.OutW, khw = s.KH * s.KW;
        long imageSize = (long)s.InC * s.H * s.W;
        int c = k0 / khw, ky = k0 % khw / s.KW, kx = k0 % s.KW;
        // The panel's columns split into runs that share an output row (several runs when OutW < NR, as in
        // small latents); each run packs as one strided or contiguous copy instead of element by element. A run
        // never crosses images, since an image's positions end with a whole row.
        int* runStart = stackalloc int[NR + 1], runY = stackalloc int[NR], runX = stackalloc int[NR];
        long* runImage = stackalloc long[NR];
        int runs = 0;
        for (int t = 0; t < cols; runs++)
        {
            int b = (j0 + t) / ohw, pos = (j0 + t) % ohw, oy = pos / ow, ox = pos % ow;
            runStart[runs] = t;
            runImage[runs] = b * imageSize;
            runY[runs] = oy * s.Stride - s.PadTop;
            runX[runs] = ox * s.Stride - s.PadLeft;
            t += Math.Min(ow - ox, cols - t);
        }
        runStart[runs] = cols;
        for (int p = 0; p < kc; p++)
        {
            float* d = dst + p * NR;
            float* plane = image + (long)c * s.H * s.W;
            for (int r = 0; r < runs; r++)
                PackRun(plane + runImage[r], runY[r] + ky, runX[r] + kx, runStart[r + 1] - runStart[r], d + runStart[r]);
            if (cols < NR) new Span<float>(d + cols, NR - cols).Clear();
            if (++kx == s.KW)
            {
                kx = 0;
                if (++ky == s.KH) { ky = 0; c++; }
            }
        }
        return dst;
    }

    /// <summary>n output positions on one output row, from image row iy starting at column ix0: zeros outside the image.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void PackRun(float* plane, int iy, int ix0, int n, float* d)
    {
        if ((uint)iy >= (uint)s.H) { new Span<float>(d, n).Clear(); return; }
        float* src = plane + (long)iy * s.W;
        if (s.Stride == 1)
        {
            if (ix0 >= 0 && ix0 + n <= s.W)
            {
                Unsafe.CopyBlockUnaligned(d, src + ix0, (uint)n * sizeof(float));
                return;
            }
            // Near a border: the in-image part is still one contiguous run.
            int lo = Math.Clamp(-ix0, 0, n), hi = Math.Clamp(s.W - ix0, lo, n);
            new Span<float>(d, lo).Clear();
            Unsafe.CopyBlockUnaligned(d + lo, src + ix0 + lo, (uint)(hi - lo) * sizeof(float));
            new Span<float>(d + hi, n - hi).Clear();
            return;
        }
        for (int t = 0; t < n; t++)
        {
            int ix = ix0 + t * s.Stride;
            d[t] = (uint)ix < (uint)s.W ? src[ix] : 0f;
        }
    }
}

/// <summary>
/// Patches transposed, for the weight gradient: rows = output positions of consecutive images (image by image),
/// columns = (c, ky, kx). Packed along runs of positions that share an output row, where a column reads one image
/// row (bounds settled once per run). At stride 1 with rows of 8+ positions each column's positions are first
/// copied as one contiguous row, then the NR rows are register-transposed into the panel as a dense B^T is: storing
/// every element to its own panel row cost about as much as the micro-kernels on the panel for 64 output channels
/// (3x3 64->64 at 16x16, batch 32, one thread: 6.6 ms before, 5.5 ms after). Shorter or strided runs (4x4 maps,
/// stride 2) stay element by element, which was 10% faster for them.
/// </summary>
internal readonly unsafe struct Conv2dPatchesTransposed(Conv2dShape s, float* images) : IPanelSource
{
    [ThreadStatic] private static nint _rows;

    public float* Panel(int k0, int kc, int j0, int cols, float* dst)
    {
        const int NR = GemmKernels.NR;
        int khw = s.KH * s.KW, ow = s.OutW, ohw = s.OutH * s.OutW;
        long imageSize = (long)s.InC * s.H * s.W;
        long* plane = stackalloc long[NR];
        int* dy = stackalloc int[NR], dx = stackalloc int[NR];
        for (int j = 0; j < cols; j++)
        {
            int kidx = j0 + j;
            plane[j] = (long)(kidx / khw) * s.H * s.W;
            dy[j] = kidx % khw / s.KW - s.PadTop;
            dx[j] = kidx % s.KW - s.PadLeft;
        }
        if (s.Stride != 1 || ow < 8)
        {
            // Short or strided runs: element by element straight into the panel (the row copies cost more there).
            for (int p = 0; p < kc;)
            {
                int k = k0 + p, b = k / ohw, oy = k % ohw / ow, ox0 = k % ow;
                int n = Math.Min(ow - ox0, kc - p);
                float* image = images + b * imageSize;
                float* d = dst + (long)p * NR;
                for (int j = 0; j < cols; j++)
                    PackColumn(image + plane[j], oy * s.Stride + dy[j], ox0 * s.Stride + dx[j], n, d + j);
                if (cols < NR)
                    for (int t = 0; t < n; t++) new Span<float>(d + t * NR + cols, NR - cols).Clear();
                p += n;
            }
            return dst;
        }
        // rows[j * kc + p]: column j's patch values at positions k0 + p (kc <= KC); a thread's buffer, since a
        // 32 KiB stackalloc is zeroed on every call
        if (_rows == 0) _rows = (nint)NativeMemory.AlignedAlloc((nuint)NR * KBlocks.KC * sizeof(float), NativeBuffer.Alignment);
        float* rows = (float*)_rows;
        for (int p = 0; p < kc;)
        {
            int k = k0 + p, b = k / ohw, oy = k % ohw / ow, ox0 = k % ow;
            int n = Math.Min(ow - ox0, kc - p);
            float* image = images + b * imageSize;
            for (int j = 0; j < cols; j++)
                CopyRun(image + plane[j], oy * s.Stride + dy[j], ox0 * s.Stride + dx[j], n, rows + (long)j * kc + p);
            p += n;
        }
        return new DenseSource(rows, kc, trans: true).Panel(0, kc, 0, cols, dst);
    }

    /// <summary>n positions of one output row, from image row iy starting at column ix0, into d[0..n): zeros outside the image.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void CopyRun(float* plane, int iy, int ix0, int n, float* d)
    {
        int st = s.Stride;
        if ((uint)iy >= (uint)s.H)
        {
            new Span<float>(d, n).Clear();
            return;
        }
        float* src = plane + (long)iy * s.W;
        // positions t with 0 <= ix0 + t * stride < W
        int lo = ix0 >= 0 ? 0 : Math.Min(n, (-ix0 + st - 1) / st);
        int hi = Math.Clamp((s.W - ix0 + st - 1) / st, lo, n);
        if (st == 1 && n <= 16 && Avx512F.IsSupported)
        {
            // A training image's row (16 or 8 positions) in one masked load and store, where a copy call and the
            // zero loops cost more than the data; masked-off lanes are not read, so src + ix0 may precede the row.
            var lanes = Vector512<int>.Indices;
            var take = Vector512.GreaterThanOrEqual(lanes, Vector512.Create(lo)) & Vector512.LessThan(lanes, Vector512.Create(hi));
            var v = Avx512F.MaskLoad(src + ix0, take.AsSingle(), Vector512<float>.Zero);
            Avx512F.MaskStore(d, Vector512.LessThan(lanes, Vector512.Create(n)).AsSingle(), v);
            return;
        }
        for (int t = 0; t < lo; t++) d[t] = 0f;
        if (st == 1) Unsafe.CopyBlockUnaligned(d + lo, src + ix0 + lo, (uint)(hi - lo) * sizeof(float));
        else for (int t = lo; t < hi; t++) d[t] = src[ix0 + t * st];
        for (int t = hi; t < n; t++) d[t] = 0f;
    }

    /// <summary>n positions of one output row, from image row iy starting at column ix0, into every NR-th float of d.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void PackColumn(float* plane, int iy, int ix0, int n, float* d)
    {
        const int NR = GemmKernels.NR;
        int st = s.Stride;
        if ((uint)iy >= (uint)s.H)
        {
            for (int t = 0; t < n; t++) d[t * NR] = 0f;
            return;
        }
        float* src = plane + (long)iy * s.W;
        // positions t with 0 <= ix0 + t * stride < W
        int lo = ix0 >= 0 ? 0 : Math.Min(n, (-ix0 + st - 1) / st);
        int hi = Math.Clamp((s.W - ix0 + st - 1) / st, lo, n);
        int t0 = 0;
        for (; t0 < lo; t0++) d[t0 * NR] = 0f;
        for (; t0 < hi; t0++) d[t0 * NR] = src[ix0 + t0 * st];
        for (; t0 < n; t0++) d[t0 * NR] = 0f;
    }
}
